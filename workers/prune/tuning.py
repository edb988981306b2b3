"""CARBS tuning of one (checkpoint, task) prune cell (paper Appendix A.5, Table 2).

    tuner = CARBS over the eight Table 2 hyperparameters, centred on params.hyper, minimising
    for each of tune.iterations iterations (32 in the paper):
        ask for tune.trials_per_iteration suggestions (8 in the paper)
        run them as concurrent Ray tasks (ctx.submit) of up to prune.trials_per_task trials each, whose
        masks train together (`trial.run_trials`); a task asks for cpus_per_trial / gpus_per_trial
        observe them all: output = circuit edges at the target loss (val split), cost = the
        trial's work in token-forwards (deterministic; wall time is only recorded),
        failure = the circuit never reached the target loss (or the trial raised)

Selection (CARBS's observations and the best trial) reads only val-split results; the
test-split losses of the best trial are what the artifact reports (see trial.py, outputs.py).

The artifact is the best trial's circuit in the files `run_prune` writes (circuit.json,
circuit.html, result.json, loss_vs_k.png), plus trials.jsonl and tuning.png; the metrics are
run_prune's for that trial plus the tuning summary and a compact log of every trial. Trials
skip the loss-vs-size curve: the cell computes it once, for the best trial, from the ranking
that trial carried (`trial.add_loss_vs_k`); trials.jsonl holds no curve.

Resume: the cell's progress area holds `tuning.json` (the CARBS state and the number of
finished iterations), saved before an iteration's trials launch, which makes them outstanding
suggestions, and again once they are observed; and `trials/<id>.json` with its ranking (tau and
the probed val losses, `trials/<id>.ranking.pt`, for the curve), saved as each trial finishes. A
restarted cell reloads them and runs only outstanding trials with no saved result. A best trial
whose ranking is not there (saved before rankings were) is run again alone (`with_ranking`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..carbs.tuner import Carbs, CarbsConfig, ObservationInput
from ..context import ProgressArea, WorkContext, run_calls
from .ablations import add_ablation_report
from .config import PruneConfig, TuneConfig
from .outputs import write_prune_outputs
from .seeds import repeat_seeds, seed_row
from .space import pruning_search_space
from .trial import TrialRanking, add_binarization, add_loss_vs_k
from .tuning_report import TRIALS_FILE, TUNING_PLOT, best_trial, plot_tuning, tuning_metrics, write_trials
from .tuning_trial import (
    TrialAssignment,
    TrialInputs,
    TrialRecord,
    cached_prune_inputs,
    run_tuning_trial,
    run_tuning_trials,
    schedulable_gpus,
)

STATE_FILE = "tuning.json"
TRIALS_PREFIX = "trials/"
RANKING_SUFFIX = ".ranking.pt"  # beside trials/<id>.json: the trial's TrialRanking
STATE_FORMAT = "sparsepipe.tune/1"


class TrialsFailedError(RuntimeError):
    """Every trial of an iteration raised: a problem of the cell, not of some hyperparameters."""


def new_tuner(params: PruneConfig, tune: TuneConfig) -> Carbs:
    config = CarbsConfig(better_direction_sign=-1, seed=tune.seed, initial_search_radius=tune.initial_search_radius)
    return Carbs(pruning_search_space(params.hyper.model_dump()), config)


def observation(record: TrialRecord) -> ObservationInput:
    """Output edges and cost the trial's deterministic work (`TrialRecord.cost`), never its wall time."""
    if not record.reached_target:
        return ObservationInput(record.id, output=math.nan, cost=record.cost, is_failure=True)
    return ObservationInput(record.id, output=float(record.edges), cost=record.cost)


class TuningProgress:
    """The durable state of one tuned cell in its progress area (a no-op without one)."""

    def __init__(self, area: ProgressArea | None, scratch: Path):
        self.area = area
        self.scratch = scratch

    def _put(self, name: str, data: dict[str, Any]) -> None:
        if self.area is None:
            return
        local = self.scratch / name.replace("/", "_")
        local.write_text(json.dumps(data))
        self.area.put(name, local)

    def _get(self, name: str) -> dict[str, Any] | None:
        local = self.scratch / name.replace("/", "_")
        if self.area is None or not self.area.get(name, local):
            return None
        return json.loads(local.read_text())

    def save_state(self, tuner: Carbs, completed_iterations: int) -> None:
        self._put(
            STATE_FILE,
            {"format": STATE_FORMAT, "completed_iterations": completed_iterations, "carbs": tuner.state_dict()},
        )

    def load_state(self) -> tuple[Carbs, int] | None:
        state = self._get(STATE_FILE)
        if state is None:
            return None
        if state.get("format") != STATE_FORMAT:
            raise ValueError(
                f"{STATE_FILE} in the progress area has format {state.get('format')!r}, expected {STATE_FORMAT!r}"
            )
        return Carbs.from_state_dict(state["carbs"]), state["completed_iterations"]

    def save_trial(self, record: TrialRecord) -> None:
        """The record, its ranking first (a record found on resume has its ranking unless it predates them)."""
        if self.area is not None and record.ranking is not None:
            local = self.scratch / f"{record.id}{RANKING_SUFFIX}"
            torch.save({"tau": record.ranking.tau, "val_losses": record.ranking.val_losses}, local)
            self.area.put(f"{TRIALS_PREFIX}{record.id}{RANKING_SUFFIX}", local)
        self._put(f"{TRIALS_PREFIX}{record.id}.json", record.to_json())

    def _load_ranking(self, trial_id: str) -> TrialRanking | None:
        local = self.scratch / f"{trial_id}{RANKING_SUFFIX}"
        if self.area is None or not self.area.get(f"{TRIALS_PREFIX}{trial_id}{RANKING_SUFFIX}", local):
            return None
        saved = torch.load(local, weights_only=True)
        return TrialRanking(saved["tau"], saved["val_losses"])

    def load_trials(self) -> dict[str, TrialRecord]:
        if self.area is None:
            return {}
        records = [self._get(name) for name in self.area.list(TRIALS_PREFIX) if name.endswith(".json")]
        loaded = [TrialRecord.from_json(r) for r in records if r is not None]
        return {r.id: replace(r, ranking=self._load_ranking(r.id)) for r in loaded}


def next_batch(tuner: Carbs, count: int, iteration: int, seed: int) -> list[TrialAssignment]:
    """The iteration's trials: its outstanding suggestions after a restart, else `count` new ones."""
    if not tuner.outstanding:
        for _ in range(count):
            tuner.suggest(f"{tuner.suggestion_count:04d}")
    # Trial seeds differ so that a repeated Pareto point measures noise rather than repeating a run.
    return [
        TrialAssignment(trial_id, iteration, seed + int(trial_id), hyper)
        for trial_id, hyper in tuner.outstanding_params().items()
    ]


def task_groups(
    batch: list[TrialAssignment], records: dict[str, TrialRecord], params: PruneConfig
) -> list[list[TrialAssignment]]:
    """The iteration's trials with no saved result, in tasks of at most params.trials_per_task, as even as can be
    (5 trials at 4 a task: 3 + 2), so that a task's trials train together and the tasks take about as long."""
    todo = [a for a in batch if a.id not in records]
    if not todo:
        return []
    tasks = math.ceil(len(todo) / params.trials_per_task)
    size = math.ceil(len(todo) / tasks)
    return [todo[i : i + size] for i in range(0, len(todo), size)]


def _description(iteration: int, iterations: int, records: dict[str, TrialRecord]) -> str:
    reached = [r.edges for r in records.values() if r.reached_target]
    best = f"best {min(reached)} edges" if reached else "no circuit at the target yet"
    return f"iter {iteration}/{iterations} {best}"


def repeat_best(
    ctx: WorkContext, inputs: TrialInputs, best: TrialRecord, count: int, resources: dict[str, float]
) -> list[dict[str, Any]]:
    """`prune.seeds`: the best trial's hyperparameters with `count - 1` other seeds, as concurrent trials (they
    never choose the circuit). A repeat that raised is a row with its error."""
    repeats = [TrialAssignment(f"seed{seed}", 0, seed, best.hyper) for seed in repeat_seeds(best.seed, count)]
    if not repeats:
        return []
    records = run_calls(ctx, [(run_tuning_trial, (inputs, a), resources) for a in repeats])
    return [{"seed": r.seed, "error": r.error} if r.result is None else seed_row(r.result) for r in records]


def with_ranking(ctx: WorkContext, inputs: TrialInputs, best: TrialRecord, resources: dict[str, float]) -> TrialRecord:
    """`best`, or where its ranking was not saved (a progress area from before rankings were), the same trial (its
    assignment and seed) run again alone for one: the rerun is the record the cell writes, so that the circuit and
    its curve come from one ranking (trials trained together agree with a trial alone up to float rounding)."""
    if best.ranking is not None:
        return best
    assignment = TrialAssignment(best.id, best.iteration, best.seed, best.hyper)
    rerun = run_calls(ctx, [(run_tuning_trial, (inputs, assignment), resources)])[0]
    if rerun.result is None:
        raise RuntimeError(f"trial {best.id}, run again for its ranking (its curve), raised: {rerun.error}")
    return rerun


def run_tuning(ctx: WorkContext, params: PruneConfig, tune: TuneConfig, task: str) -> None:
    """Tune the pruning hyperparameters of one cell with CARBS and keep the best circuit."""
    torch.set_num_threads(ctx.num_threads)
    uses_means = params.ablation == "mean"
    # Loaded here first so that unusable inputs fail the cell before any trial runs;
    # the best circuit is written from them.
    local = cached_prune_inputs(
        ctx.input("checkpoint"),
        ctx.input("mean_cache") if uses_means else None,
        ctx.input("tokens"),
        task,
        params,
        ctx.device,
    )
    inputs = TrialInputs(
        checkpoint=ctx.handle("checkpoint"),
        mean_cache=ctx.handle("mean_cache") if uses_means else None,
        tokens=ctx.handle("tokens"),
        task=task,
        settings=params,
        cpus=tune.cpus_per_trial,
        gpus=schedulable_gpus(tune.gpus_per_trial),
    )
    resources = {"num_cpus": inputs.cpus, "num_gpus": inputs.gpus}

    with tempfile.TemporaryDirectory(prefix=f"sparsepipe-tune-{os.getpid()}-") as scratch:
        progress = TuningProgress(ctx.progress, Path(scratch))
        tuner, completed = progress.load_state() or (new_tuner(params, tune), 0)
        records = progress.load_trials()
        resumed = len(records)

        def finished(_: int, task_records: list[TrialRecord]) -> None:
            for record in task_records:
                records[record.id] = record
                progress.save_trial(record)

        ctx.report(
            {
                "completed": completed,
                "total": tune.iterations,
                "description": _description(completed, tune.iterations, records),
            }
        )
        while completed < tune.iterations:
            iteration = completed + 1
            batch = next_batch(tuner, tune.trials_per_iteration, iteration, params.seed)
            progress.save_state(
                tuner, completed
            )  # the batch is outstanding in it: a restart re-runs what did not finish
            todo = [(run_tuning_trials, (inputs, group), resources) for group in task_groups(batch, records, params)]
            run_calls(ctx, todo, on_result=finished)
            done = [records[a.id] for a in batch]
            if all(r.error is not None for r in done):
                raise TrialsFailedError(
                    f"every trial of iteration {iteration} raised, e.g. trial {done[0].id}: {done[0].error}"
                )
            for record in done:
                tuner.observe(observation(record))
            completed = iteration
            progress.save_state(tuner, completed)
            ctx.report(
                {
                    "completed": completed,
                    "total": tune.iterations,
                    "description": _description(completed, tune.iterations, records),
                }
            )

    best = with_ranking(ctx, inputs, best_trial(list(records.values())), resources)
    records[best.id] = best
    trials = list(records.values())
    result = best.trial_result()
    seeds = [seed_row(best.result)] + repeat_best(ctx, inputs, best, params.seeds, resources)
    add_loss_vs_k(local, params, result)
    add_binarization(local, params, result)
    add_ablation_report(local, params, result, ctx.input("mean_cache"))
    write_prune_outputs(ctx, local, params, result, seeds)
    out = Path(ctx.out_dir)
    write_trials(trials, out / TRIALS_FILE)
    plot_tuning(trials, tune.iterations, task, out / TUNING_PLOT)
    ctx.metrics.update(tuning_metrics(trials, tune.iterations, best, resumed))
