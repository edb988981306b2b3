"""The CARBS tuning loop of a prune cell, run serially in this process (no Ray)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from tune_toys import SETTINGS, TASK

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import default_registry
from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.config import PruneHyperparams, TuneConfig
from sparsepipe.workers.prune.seeds import repeat_seeds
from sparsepipe.workers.prune.stage import TUNED_CELL_CPUS, run_prune_cell
from sparsepipe.workers.prune.trial import run_trial
from sparsepipe.workers.prune.tuning import (
    RANKING_SUFFIX,
    STATE_FILE,
    TRIALS_PREFIX,
    TrialsFailedError,
    observation,
    run_tuning,
    task_groups,
)
from sparsepipe.workers.prune.tuning_report import TRIALS_FILE, best_trial
from sparsepipe.workers.prune.tuning_trial import (
    TrialAssignment,
    TrialInputs,
    TrialRecord,
    cached_prune_inputs,
    run_tuning_trial,
    run_tuning_trials,
)

TUNE = TuneConfig(iterations=3, trials_per_iteration=3, cpus_per_trial=1)


# Tests that run the tuning loop train a model for their inputs first: the full suite runs them,
# the inner loop (-m "not slow") does not.
SLOW = pytest.mark.slow


@pytest.fixture(scope="module")
def tuned(cell_inputs, tmp_path_factory):
    """A tuned cell run through the stage adapter: (ctx, progress events)."""
    events = []
    root = tmp_path_factory.mktemp("tuned")
    ctx = local_context(root / "out", inputs=cell_inputs, report=events.append, cell=f"pretrain/toy:{TASK}")
    prune = SETTINGS.model_copy(update={"seeds": 2})  # the best trial's mask training once more, another seed
    run_prune_cell(ctx, {"task": TASK, "prune": prune.model_dump(mode="json"), "tune": TUNE.model_dump(mode="json")})
    return ctx, events


@SLOW
def test_every_trial_of_every_iteration_is_observed(tuned):
    ctx, _ = tuned
    state = json.loads((ctx.progress.root / STATE_FILE).read_text())
    carbs = state["carbs"]
    assert state["completed_iterations"] == TUNE.iterations
    assert len(carbs["observations"]) == TUNE.iterations * TUNE.trials_per_iteration and not carbs["outstanding"]
    log = ctx.metrics["trial_log"]
    assert [entry["iteration"] for entry in log] == [
        i for i in range(1, TUNE.iterations + 1) for _ in range(TUNE.trials_per_iteration)
    ]
    observed = {o["suggestion_id"]: o for o in carbs["observations"]}
    for entry in log:  # output = edges when the target was reached, a failure otherwise
        assert observed[entry["id"]]["is_failure"] == (not entry["reached_target"])
        if entry["reached_target"]:
            assert observed[entry["id"]]["output"] == entry["edges"]
        # cost = the trial's deterministic work (token-forwards), not its wall time
        assert observed[entry["id"]]["cost"] == entry["cost"] > 0 and entry["seconds"] == pytest.approx(
            entry["end"] - entry["start"], abs=0.01
        )


@SLOW
def test_search_starts_from_the_table_2_centres(tuned):
    ctx, _ = tuned
    carbs = json.loads((ctx.progress.root / STATE_FILE).read_text())["carbs"]
    assert {p["name"]: p["search_center"] for p in carbs["params"]} == PruneHyperparams().model_dump()
    assert carbs["config"]["better_direction_sign"] == -1


@SLOW
def test_the_artifact_is_the_smallest_circuit_that_reached_the_target(tuned):
    ctx, _ = tuned
    out, metrics = ctx.out_dir, ctx.metrics
    log = metrics["trial_log"]
    reached = [entry for entry in log if entry["reached_target"]]
    assert reached, "the trained toy should reach the target with some hyperparameters"
    best = min(reached, key=lambda entry: entry["edges"])
    assert metrics["edges"] == best["edges"] and metrics["reached_target"]
    assert metrics["best_iteration"] == best["iteration"] and metrics["best_trial"] == best["id"]
    assert metrics["trials"] == len(log) == TUNE.iterations * TUNE.trials_per_iteration
    assert metrics["iterations"] == TUNE.iterations and metrics["failed_trials"] == len(log) - len(reached)
    assert metrics["trials_resumed"] == 0

    assert {p.name for p in out.iterdir()} == {
        "circuit.json",
        "circuit.html",
        "result.json",
        "loss_vs_k.png",
        "loss_vs_k.json",
        "loss_vs_k.csv",
        "trials.jsonl",
        "tuning.png",
    }
    result = json.loads((out / "result.json").read_text())
    circuit = json.loads((out / "circuit.json").read_text())
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    best_record = next(t for t in trials if t["id"] == best["id"])
    assert result["edges"] == circuit["counts"]["edges"] == best["edges"]
    assert circuit["hyperparameters"] == best_record["hyper"] == result["hyper"]
    assert result["seed"] == best_record["seed"] and len({t["seed"] for t in trials}) == len(trials)
    # prune.seeds = 2: the best trial, then its hyperparameters with another seed (not a CARBS trial).
    assert [row["seed"] for row in result["seeds"]] == [best_record["seed"], *repeat_seeds(best_record["seed"], 2)]
    assert result["seeds"][0]["edges"] == result["edges"] and set(result["seed_spread"]) == {
        "nodes",
        "edges",
        "circuit_loss",
    }
    assert (out / "tuning.png").read_bytes()[:4] == b"\x89PNG"


@SLOW
def test_trial_log_names_where_and_when_each_trial_ran(tuned):
    ctx, _ = tuned
    for entry in ctx.metrics["trial_log"]:
        assert set(entry) >= {"id", "hyper", "nodes", "edges", "loss", "reached_target", "start", "end", "host", "node"}
        assert entry["end"] > entry["start"] and entry["host"] and entry["node"] == ""  # no Ray here
        assert set(entry["hyper"]) == set(PruneHyperparams.model_fields)
    assert len(json.dumps(ctx.metrics["trial_log"])) < 600 * len(ctx.metrics["trial_log"])


@SLOW
def test_progress_reports_each_iteration(tuned):
    _, events = tuned
    bars = [e for e in events if "completed" in e]  # the others carry only scalars for the trackers
    assert [e["completed"] for e in bars] == list(range(TUNE.iterations + 1))
    assert all(e["total"] == TUNE.iterations for e in bars)
    assert bars[-1]["description"].startswith(f"iter {TUNE.iterations}/{TUNE.iterations} best ")
    assert all("scalars" in e for e in events if "completed" not in e)


@SLOW
def test_the_written_curve_is_the_best_trials_own_and_no_trial_row_has_one(tuned, cell_inputs):
    """Trials skip the loss-vs-size curve; the cell computes the best trial's once, from its ranking: the rows the
    same trial (seed, hyperparameters) computes itself."""
    ctx, _ = tuned
    out = ctx.out_dir
    rows = [json.loads(line) for line in (out / TRIALS_FILE).read_text().splitlines()]
    assert all(row["result"]["loss_vs_k"] == [] and "ranking" not in row["result"] for row in rows if row["result"])
    assert all("ranking" not in row for row in rows)
    saved = {path.name for path in (ctx.progress.root / TRIALS_PREFIX).iterdir()}
    assert saved == {f"{row['id']}{suffix}" for row in rows for suffix in (".json", RANKING_SUFFIX)}
    result = json.loads((out / "result.json").read_text())
    loaded = cached_prune_inputs(
        cell_inputs["checkpoint"], cell_inputs["mean_cache"], cell_inputs["tokens"], TASK, SETTINGS, "cpu"
    )
    hyper = PruneHyperparams.model_validate(result["hyper"])
    own = run_trial(loaded.model, loaded.means, loaded.task_data, hyper, SETTINGS, result["seed"], TASK, curve=True)
    assert result["loss_vs_k"] == own.loss_vs_k and len(own.loss_vs_k) >= SETTINGS.curve_points
    assert ctx.metrics["timings"]["curve_s"] > 0


def _resume(ctx, cell_inputs, out, progress):
    """The tuned cell run again on `progress`: every trial is resumed. Returns the new context."""
    again = local_context(out, inputs=cell_inputs, progress_dir=progress)
    run_prune_cell(
        again, {"task": TASK, "prune": SETTINGS.model_dump(mode="json"), "tune": TUNE.model_dump(mode="json")}
    )
    assert again.metrics["trials_resumed"] == again.metrics["trials"] == len(ctx.metrics["trial_log"])
    return again


@SLOW
def test_a_finished_cell_run_again_resumes_every_trial(tuned, cell_inputs, tmp_path):
    ctx, _ = tuned
    again = _resume(ctx, cell_inputs, tmp_path / "out", ctx.progress.root)
    assert again.metrics["trial_log"] == ctx.metrics["trial_log"] and again.metrics["edges"] == ctx.metrics["edges"]
    written = [json.loads((c.out_dir / "result.json").read_text())["loss_vs_k"] for c in (ctx, again)]
    assert written[1] == written[0] and written[0]  # the curve from the saved ranking


@SLOW
def test_a_resumed_cell_without_saved_rankings_runs_its_best_trial_again_for_the_curve(tuned, cell_inputs, tmp_path):
    """A progress area from before rankings were saved: the best trial (alone: trials_per_task 1) is run again, the
    same seed and hyperparameters, so the curve is the one the cell would have written."""
    ctx, _ = tuned
    progress = tmp_path / "progress"
    shutil.copytree(ctx.progress.root, progress)
    for ranking in (progress / TRIALS_PREFIX).glob(f"*{RANKING_SUFFIX}"):
        ranking.unlink()
    again = _resume(ctx, cell_inputs, tmp_path / "out", progress)
    best = ctx.metrics["best_trial"]
    assert again.metrics["best_trial"] == best and again.metrics["edges"] == ctx.metrics["edges"]
    written = [json.loads((c.out_dir / "result.json").read_text()) for c in (ctx, again)]
    assert written[1]["loss_vs_k"] == written[0]["loss_vs_k"] and written[1]["kept"] == written[0]["kept"]
    rerun = {entry["id"]: entry for entry in again.metrics["trial_log"]}[best]
    assert rerun["start"] > {entry["id"]: entry for entry in ctx.metrics["trial_log"]}[best]["end"]  # run again


def _record(trial_id: str, edges: int, loss: float, reached: bool, test_loss: float = 0.5) -> TrialRecord:
    result = {
        "edges": edges,
        "nodes": edges,
        "selection_loss": loss,
        "circuit_loss": test_loss,
        "reached_target": reached,
        "cost": 1000.0,
    }
    return TrialRecord(trial_id, 1, 0, {}, 0.0, 1.0, 0.0, "host", "", result)


def test_best_trial_prefers_reaching_the_target_then_fewer_edges_then_lower_loss():
    records = [
        _record("a", 50, 0.10, True),
        _record("b", 10, 0.14, True),
        _record("c", 1, 0.5, False),
        _record("d", 10, 0.12, True),
    ]
    assert best_trial(records).id == "d"
    assert best_trial([_record("a", 5, 0.4, False), _record("b", 9, 0.3, False)]).id == "b"
    errored = TrialRecord("e", 1, 0, {}, 0.0, 1.0, 0.0, "host", "", None, "RuntimeError: boom")
    assert best_trial([errored, _record("a", 5, 0.4, False)]).id == "a"


def test_best_trial_never_reads_the_test_losses():
    """Selection ties break on the val loss; a better test loss does not win."""
    records = [_record("a", 10, 0.12, True, test_loss=0.01), _record("b", 10, 0.11, True, test_loss=0.9)]
    assert best_trial(records).id == "b"
    assert (
        best_trial([_record("a", 5, 0.4, False, test_loss=0.0), _record("b", 9, 0.3, False, test_loss=2.0)]).id == "b"
    )


def test_the_tuner_observes_work_not_wall_time():
    slow = TrialRecord("a", 1, 0, {}, 0.0, 100.0, 0.0, "host", "", _record("a", 10, 0.1, True).result)
    fast = TrialRecord("b", 1, 0, {}, 0.0, 0.5, 0.0, "host", "", _record("b", 10, 0.1, True).result)
    assert observation(slow).cost == observation(fast).cost == 1000.0
    missed = observation(_record("c", 10, 0.3, False))
    assert missed.is_failure and missed.cost == 1000.0
    errored = TrialRecord("e", 1, 0, {}, 0.0, 1.0, 0.0, "host", "", None, "RuntimeError: boom")
    assert observation(errored).is_failure and math.isnan(observation(errored).cost)


def test_two_identical_trials_have_the_same_cost(cell_inputs, tmp_path):
    """The same assignment run twice: the same work, so the same cost, whatever the wall clock says."""
    ctx = local_context(tmp_path / "out", inputs=cell_inputs)
    inputs = TrialInputs(
        ctx.handle("checkpoint"), ctx.handle("mean_cache"), ctx.handle("tokens"), TASK, SETTINGS, cpus=1, gpus=0
    )
    assignment = TrialAssignment("0000", 1, 7, PruneHyperparams().model_dump())
    first, second = run_tuning_trial(inputs, assignment), run_tuning_trial(inputs, assignment)
    assert first.error is None and second.error is None
    assert first.cost == second.cost > 0 and first.result["work"] == second.result["work"]
    a, b = observation(first), observation(second)
    assert (a.cost, a.is_failure, first.edges) == (b.cost, b.is_failure, second.edges)
    assert first.result["test_pairs"] == SETTINGS.eval_pairs and first.result["pairs"]["val"] == SETTINGS.eval_pairs


def test_prune_cells_carry_the_tune_config_only_when_tuning():
    only = ['prune.checkpoints=["pretrain"]', "prune.controls=[]"]
    tuned = resolve_config("smoke", assignments=[*only, "tune.iterations=3"])
    fixed = resolve_config("smoke", assignments=[*only, "tune.enabled=false"])
    registry = default_registry()
    stages = registry.closure(["prune"])
    tuned_cells = registry.list_cells(tuned, stages)["prune"]
    fixed_cells = registry.list_cells(fixed, stages)["prune"]
    assert (
        [c.cell for c in tuned_cells]
        == [c.cell for c in fixed_cells]
        == [f"pretrain/smoke:{t}" for t in tuned.prune.tasks]
    )
    assert all(
        c.params["tune"] == tuned.tune.model_dump(mode="json") and c.resources.num_cpus == TUNED_CELL_CPUS
        for c in tuned_cells
    )
    assert all("tune" not in c.params and c.resources.num_cpus == 1 for c in fixed_cells)


def _raise_on_odd_seeds(real_run_trial):
    def run_trial(*args, **kwargs):
        if args[5] % 2:  # the trial's seed
            raise FloatingPointError("masks went NaN")
        return real_run_trial(*args, **kwargs)

    return run_trial


@SLOW
def test_a_trial_that_raises_is_a_failed_trial(cell_inputs, tmp_path, monkeypatch):
    import sparsepipe.workers.prune.tuning_trial as tune_trial

    monkeypatch.setattr(tune_trial, "run_trial", _raise_on_odd_seeds(tune_trial.run_trial))
    ctx = local_context(tmp_path / "out", inputs=cell_inputs)
    one_per_task = SETTINGS.model_copy(update={"trials_per_task": 1})  # each trial through run_trial
    run_tuning(ctx, one_per_task, TuneConfig(iterations=1, trials_per_iteration=2), TASK)
    raised = [entry for entry in ctx.metrics["trial_log"] if "error" in entry]
    assert [entry["error"] for entry in raised] == ["FloatingPointError: masks went NaN"]
    assert raised[0]["edges"] is None and not raised[0]["reached_target"] and ctx.metrics["failed_trials"] >= 1
    assert ctx.metrics["best_trial"] != raised[0]["id"]


@SLOW
def test_an_iteration_whose_every_trial_raises_stops_the_cell(cell_inputs, tmp_path, monkeypatch):
    import sparsepipe.workers.prune.tuning_trial as tune_trial

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this device")

    monkeypatch.setattr(tune_trial, "run_trial", broken)
    monkeypatch.setattr(tune_trial, "run_trials", broken)  # trials trained together raise too, then each alone
    ctx = local_context(tmp_path / "out", inputs=cell_inputs)
    with pytest.raises(TrialsFailedError, match="no kernel for this device"):
        run_tuning(ctx, SETTINGS, TuneConfig(iterations=2, trials_per_iteration=2), TASK)
    assert not (tmp_path / "out" / "circuit.json").exists()


def test_an_iteration_is_split_into_even_tasks_of_at_most_trials_per_task():
    batch = [TrialAssignment(f"{i:04d}", 1, i, {}) for i in range(5)]
    sizes = lambda per_task, done=(): [  # noqa: E731
        len(group)
        for group in task_groups(
            batch, {i: None for i in done}, SETTINGS.model_copy(update={"trials_per_task": per_task})
        )
    ]
    assert sizes(8) == [5] and sizes(4) == [3, 2] and sizes(2) == [2, 2, 1] and sizes(1) == [1] * 5
    assert sizes(4, done=("0000", "0003")) == [3] and sizes(4, done=[a.id for a in batch]) == []


@SLOW
def test_trials_trained_together_record_what_each_alone_records(cell_inputs, tmp_path):
    ctx = local_context(tmp_path / "out", inputs=cell_inputs)
    inputs = TrialInputs(
        ctx.handle("checkpoint"), ctx.handle("mean_cache"), ctx.handle("tokens"), TASK, SETTINGS, cpus=1, gpus=0
    )
    assignments = [
        TrialAssignment("0000", 1, 3, PruneHyperparams().model_dump()),
        TrialAssignment("0001", 1, 4, PruneHyperparams(lr=1e-2, k_coef=3e-4).model_dump()),
        TrialAssignment("0002", 1, 5, {**PruneHyperparams().model_dump(), "lr": -1.0}),  # raises: fails alone
    ]
    together = run_tuning_trials(inputs, assignments)
    alone = [run_tuning_trial(inputs, a) for a in assignments]
    assert [r.id for r in together] == ["0000", "0001", "0002"]
    assert together[2].result is None and "lr" in together[2].error and alone[2].error == together[2].error
    for batched, single in zip(together[:2], alone[:2]):
        assert batched.error is None and single.error is None
        assert (batched.edges, batched.cost, batched.result["kept"]) == (
            single.edges,
            single.cost,
            single.result["kept"],
        )
