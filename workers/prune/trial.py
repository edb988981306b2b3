"""One pruning trial (paper §2.2, Appendix A.5): the smallest circuit that still does a task.

`run_trial` is pure (tensors in, a JSON-able `TrialResult` out): train masks, rank and bisect (`search`), calibrate,
then report on held-out pairs (test split), never used to train or select: full model, circuit alone, calibrated
circuit, model without the circuit (inverse pruning, Fig. 32), and a random circuit with the same number of nodes at
every location. `add_binarization` adds the App. C step-function losses of the circuit that is written.

The loss-vs-size curve (`loss_vs_k`, with inverse losses, Fig. 32) is read, never selected on, so only the written
circuit's is computed: in the trial when asked (`curve=True`, the untuned cell's one trial), else once per cell from
the ranking a trial carries (`TrialResult.ranking`, never in its JSON) by `add_loss_vs_k`. CARBS trials and the
`prune.seeds` repeats skip it (issue 27: it was the largest phase of a trial after mask training).

Splits (DESIGN.md, "Definitions"): masks train on the task's train pairs, bisection and CARBS's choice of the best
trial use the val pairs (`selection_loss`), and every reported loss (`full_model_loss`, `circuit_loss`,
`calibrated_loss`, `inverse_loss`, `random_circuit_loss`) is measured on the `test_pairs` test pairs.

Work: `TrialResult.work` counts the forward passes a trial ran (`masked.Work`), and `cost` is that count in
token-forwards: a deterministic measure for CARBS, unlike wall time (which stays in `timings`).

The stage worker is `worker.run_prune`; the files a cell writes are `outputs.write_prune_outputs`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ...tasks import TaskBatch
from ..nn.circuit import build_circuit, kept_indices
from ..nn.gpt import GPT
from ..nn.masks import NodeLayout, ablation_values, kept_mask
from .binarize import StepFunctions, fit_binarization
from .config import PruneConfig, PruneHyperparams
from .degenerate import CIRCUIT, circuit_kind
from .inputs import PruneInputs
from .losses import TaskData, by_length, chunks, pair_losses, two_way_loss
from .masked import MaskedModel
from .search import (
    ProgressFn,
    Ranking,
    coarse_to_fine_k,
    fit_calibration,
    log_spaced_sizes,
    random_like,
    train_masks_together,
)

# ------------------------------------------------------------------------- trial

EVAL_CHUNK_FACTOR = 4  # pairs per evaluation forward, in training batches (`eval_chunks`)
COARSE_FRACTION = 4  # bisection brackets k on 1/COARSE_FRACTION of the val pairs
ABLATIONS_PER_FORWARD = 8  # single-node ablations of the viewer per (stacked) forward
# per sweep row (App. C)
BINARIZED_KEYS = ("binarized_loss", "binarized_init_loss", "binarized_fit_loss", "binarized_own_scale_loss")
BINARIZED_PAIR_LOSSES = "binarized_pair_losses"  # in binarized_losses' answer; goes to test_pair_losses


@dataclass
class TrialRanking:
    """What a trial's loss-vs-size curve needs besides the model and the val pairs: the trial's tau (its ranking) and
    the loss on all val pairs at every k its bisections probed, by k. It travels with the trial (pickled, and saved
    beside a tuned cell's trial records), never in the trial's JSON."""

    tau: Tensor  # [n_masks], on the CPU
    val_losses: dict[int, float]


@dataclass
class ValPairs:
    """The val pairs as bisection and the curve read them: all of them, shortest first (`by_length`), and every
    COARSE_FRACTION-th of them (of every length), the cheap estimate that brackets k; each in evaluation chunks."""

    full: TaskBatch
    full_chunks: list[TaskBatch]
    coarse: TaskBatch
    coarse_chunks: list[TaskBatch]

    @classmethod
    def of(cls, evaluation: TaskBatch, settings: PruneConfig) -> ValPairs:
        coarse = evaluation.select(range(0, evaluation.n_pairs, COARSE_FRACTION))
        return cls(evaluation, eval_chunks(evaluation, settings), coarse, eval_chunks(coarse, settings))


@dataclass
class TrialResult:
    """Everything one pruning trial found; `asdict` is JSON-able."""

    task: str
    seed: int
    target_loss: float
    loss_reduction: str  # "mean" or "pair_sum": how every loss below reduces a pair's two prompts
    reached_target: bool  # selection_loss <= target_loss (val split)
    selection_loss: float  # val: the circuit's loss that bisection compared with the target
    test_reached_target: bool  # circuit_loss <= target_loss (test split)
    nodes: int  # kept nodes (a tied q/k mask entry keeps 2)
    edges: int  # weight edges among kept nodes, the paper's metric (nn.circuit)
    total_nodes: int
    masks_kept: int  # k: mask entries in the circuit
    active_after_training: int  # mask entries with tau > 0 when training ended
    # Reported losses, all on the test split (test_pairs pairs):
    circuit_loss: float  # everything outside the circuit ablated, before calibration
    calibrated_loss: float  # same, after calibrating the logit gap
    calibration_train_loss_before: float
    calibration_train_loss_after: float
    logit_scale: float
    logit_bias: float
    full_model_loss: float
    inverse_loss: float  # only the circuit ablated
    random_circuit_loss: float  # random circuit with the same nodes per location
    test_pairs: int  # pairs behind every reported loss
    pairs: dict[str, int]  # pairs per role: train (pool), calibration (from the pool), val, test
    edge_counts: dict[str, int]
    bisection: list[dict[str, float]]  # {k, nodes, loss} in probe order (val)
    train_history: list[dict[str, float]]
    kept: dict[str, list[int]]  # the circuit: kept channel indices per node location
    hyper: dict[str, float]
    work: dict[str, int]  # forward passes run (`Work`); deterministic for a given trial
    cost: float  # work["cost"], token-forwards: the cost CARBS observes
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds, recorded only
    # Test loss with every kept node on its fitted step function (App. C), after the refinement and with the
    # initialisation alone; None when binarize_pairs is 0.
    binarized_loss: float | None = None
    binarized_init_loss: float | None = None
    # One circuit per target of settings.target_sweep, ascending: target_loss, reached_target, masks_kept,
    # nodes, edges, selection_loss (val), circuit_loss, test_reached_target, binarized_loss and
    # binarized_init_loss (test), binarized_fit_loss (train), kept.
    sweep: list[dict[str, Any]] = field(default_factory=list)
    # "circuit", or a degenerate one: "empty", "whole model", "not reached" (`degenerate.circuit_kind`); each sweep
    # row has its own.
    circuit: str = CIRCUIT
    # Each test pair's loss behind every reported loss ({"circuit_loss": [N floats], ...}), what the bootstrap
    # intervals resample (`intervals.py`).
    test_pair_losses: dict[str, list[float]] = field(default_factory=dict)
    # The written circuit only (`ablations.add_ablation_report`, `add_binarization`), test split: accuracy before
    # and after calibration, the loss under each ablation with the same masks, and the binarized loss with the
    # binarized gaps rescaled to the circuit's own gap scale (so no fitted level can act as a logit scale).
    circuit_accuracy: float | None = None
    calibrated_accuracy: float | None = None
    ablation_losses: dict[str, Any] = field(default_factory=dict)  # trained_under, then per ablation
    binarized_own_scale_loss: float | None = None
    # The written circuit's only (`loss_vs_k`; empty in a CARBS trial's record): {k, nodes, edges, loss, val_pairs}
    # sorted by k: probes (all val pairs) and curve points (every COARSE_FRACTION-th val pair where not probed;
    # val_pairs says which); curve points also inverse_loss (Fig. 32).
    loss_vs_k: list[dict[str, float]] = field(default_factory=list)
    # What the curve is computed from once per cell (`add_loss_vs_k`); left out of `to_json`.
    ranking: TrialRanking | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(replace(self, ranking=None))
        del data["ranking"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialResult:
        return cls(**data)


def run_trial(
    model: GPT,
    means: dict[str, Tensor] | None,
    task_data: TaskData,
    hyper: PruneHyperparams,
    settings: PruneConfig,
    seed: int,
    task: str = "",
    progress: ProgressFn | None = None,
    curve: bool = False,
) -> TrialResult:
    """One pruning trial; no I/O. `curve`: also its loss-vs-size curve (`loss_vs_k`), for the trial whose circuit is
    written. The caller sets torch's thread count."""
    return run_trials(model, means, task_data, [hyper], settings, [seed], task, progress, curve)[0]


@dataclass
class TrialStart:
    """What one trial draws before its masks train, in the order a trial alone draws it from its seed."""

    seed: int
    hyper: PruneHyperparams
    generator: torch.Generator
    calibration_set: TaskBatch
    masked: MaskedModel  # counts this trial's work


def run_trials(
    model: GPT,
    means: dict[str, Tensor] | None,
    task_data: TaskData,
    hypers: list[PruneHyperparams],
    settings: PruneConfig,
    seeds: list[int],
    task: str = "",
    progress: ProgressFn | None = None,
    curve: bool = False,
) -> list[TrialResult]:
    """Pruning trials with hyperparameters hypers[i] and seeds[i]; no I/O. Their masks train together, on a trial
        dimension (`search.train_masks_together`); everything else runs per trial. Trial i's result is the one
        `run_trial(..., hypers[i], ..., seeds[i])` gives, up to float rounding. `curve`: each trial's loss-vs-size curve
    too (`run_trial`). The caller sets torch's thread count."""
    if len(hypers) != len(seeds) or not hypers:
        raise ValueError(f"run_trials needs one seed per hyperparameter set, got {len(hypers)} and {len(seeds)}")
    started = time.perf_counter()
    model.eval().requires_grad_(False)
    device = next(model.parameters()).device
    layout = NodeLayout(model.config, tie_qk=settings.tie_qk_masks)
    ablation = ablation_values(layout, means, settings.ablation)
    # The val set shortest first: evaluated in chunks, it carries less padding (`by_length`). The test set keeps
    # its order: per-pair test losses are recorded in it.
    data = TaskData(task_data.train.to(device), by_length(task_data.eval.to(device)), task_data.test.to(device))
    starts = []
    for hyper, seed in zip(hypers, seeds):
        generator = torch.Generator().manual_seed(seed)
        picked = torch.randperm(data.train.n_pairs, generator=generator)[: settings.eval_pairs]
        calibration_set = by_length(data.train.select(picked))
        starts.append(TrialStart(seed, hyper, generator, calibration_set, MaskedModel(model, layout, ablation)))
    trained = train_masks_together(
        [s.masked for s in starts], data.train, hypers, settings, [s.generator for s in starts], progress
    )
    train_s = time.perf_counter() - started
    # The unmasked model's test gaps: the same for every trial, so run once (and counted in no trial's work).
    full_gaps = MaskedModel(model, layout, ablation).gaps(eval_chunks(data.test, settings), None)
    shared = {"train_s": train_s, "full_model_s": time.perf_counter() - started - train_s}
    return [
        finish_trial(start, tau, history, data, full_gaps, settings, task, shared, len(starts), curve)
        for start, (tau, history) in zip(starts, trained)
    ]


def eval_chunks(batch: TaskBatch, settings: PruneConfig) -> list[TaskBatch]:
    """A fixed set in chunks of EVAL_CHUNK_FACTOR x batch_pairs: no gradients are kept, so an evaluation
    forward holds a few times a training step's pairs in less memory, in fewer model calls."""
    return chunks(batch, EVAL_CHUNK_FACTOR * settings.batch_pairs)


def finish_trial(
    start: TrialStart,
    tau: Tensor,
    history: list[dict[str, float]],
    data: TaskData,
    full_gaps: Tensor,
    settings: PruneConfig,
    task: str,
    shared: dict[str, float],
    trained_together: int,
    curve: bool = False,
) -> TrialResult:
    """Rank and bisect (val), calibrate (train), then report on the test pairs: the trial after its masks.
    `shared`: wall seconds of the phases run once for the `trained_together` trials; `curve`: see `run_trial`."""
    started = time.perf_counter()
    timings = {**shared, "trained_together": float(trained_together)}
    masked, generator, hyper, seed = start.masked, start.generator, start.hyper, start.seed
    model, layout, device = masked.model, masked.layout, masked.device
    reduction = settings.loss_reduction
    train, evaluation, test = data.train, data.eval, data.test
    # Bisection brackets k on every COARSE_FRACTION-th val pair (of every length), then decides on all of them.
    val = ValPairs.of(evaluation, settings)
    test_chunks = eval_chunks(test, settings)
    calibration_set = start.calibration_set
    calibration_chunks = eval_chunks(calibration_set, settings)
    calibration_correct = calibration_set.correct

    mark = time.perf_counter()
    ranking = Ranking(tau.cpu(), layout)
    eval_gaps: dict[int, Tensor] = {}
    coarse_losses: dict[int, float] = {}

    def loss_at(k: int) -> float:
        if k not in eval_gaps:
            eval_gaps[k] = masked.gaps(val.full_chunks, ranking.top_k(k).to(device))
        return float(two_way_loss(eval_gaps[k], evaluation.correct, reduction=reduction))

    def coarse_loss_at(k: int) -> float:
        if k not in coarse_losses:
            coarse_losses[k] = val_loss(masked, val.coarse, val.coarse_chunks, ranking.top_k(k), reduction)
        return coarse_losses[k]

    bisections = {t: coarse_to_fine_k(loss_at, coarse_loss_at, ranking.n_active, t) for t in settings.target_sweep}
    bisection = bisections[settings.target_loss]
    trial_ranking = TrialRanking(tau.cpu(), {k_: loss_at(k_) for k_ in sorted(eval_gaps)})
    timings["bisect_s"] = time.perf_counter() - mark
    curve_rows: list[dict[str, float]] = []
    if curve:  # with the bisection's coarse losses, which the cell's `add_loss_vs_k` measures again
        mark = time.perf_counter()
        curve_rows = loss_vs_k(masked, trial_ranking, val, settings, coarse_losses)
        timings["curve_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    k = bisection.k
    circuit_mask = ranking.top_k(k).to(device)
    train_gaps = masked.gaps(calibration_chunks, circuit_mask)
    calibration = fit_calibration(train_gaps, calibration_correct, settings.calibration_steps)
    timings["calibrate_s"] = time.perf_counter() - mark

    # Reporting: held-out test pairs, after every choice (masks, k, calibration) is made.
    mark = time.perf_counter()

    per_pair: dict[str, list[float]] = {}

    def test_loss(gaps: Tensor, scale: float = 1.0, shift: float = 0.0, name: str = "") -> float:
        if name:
            per_pair[name] = rounded_pair_losses(pair_losses(gaps, test.correct, scale, shift, reduction))
        return float(two_way_loss(gaps, test.correct, scale, shift, reduction=reduction))

    random_mask = layout.node_mask(random_like((ranking.rank < k).float(), layout, generator)).to(device)
    circuit_gaps = masked.gaps(test_chunks, circuit_mask)
    inverse_loss = test_loss(masked.gaps(test_chunks, 1 - circuit_mask), name="inverse_loss")
    random_loss = test_loss(masked.gaps(test_chunks, random_mask), name="random_circuit_loss")
    circuit_loss = test_loss(circuit_gaps, name="circuit_loss")
    kept = kept_indices(layout.split(circuit_mask))
    circuit = build_circuit(model, kept, evaluation.candidates)
    timings["checks_s"] = time.perf_counter() - mark

    # The target sweep (Fig. 2): one circuit per target from the same ranking.
    mark = time.perf_counter()
    sweep = []
    for target, found in bisections.items():
        mask = ranking.top_k(found.k).to(device)
        test_value = circuit_loss if found.k == k else test_loss(masked.gaps(test_chunks, mask))
        sweep.append(
            {
                "target_loss": target,
                "reached_target": found.reached_target,
                "masks_kept": found.k,
                "nodes": ranking.nodes(found.k),
                "edges": ranking.edges(found.k, model),
                "selection_loss": loss_at(found.k),
                "circuit_loss": test_value,
                "test_reached_target": test_value <= target,
                "circuit": circuit_kind(found.k, layout.n_masks, found.reached_target),
                "kept": {name: idx.tolist() for name, idx in kept_indices(layout.split(mask)).items()},
            }
        )
    timings["sweep_s"] = time.perf_counter() - mark
    # A trial's share of the phases run once for the trials trained together, then its own phases.
    timings["total_s"] = sum(shared.values()) / trained_together + time.perf_counter() - started

    return TrialResult(
        task=task,
        seed=seed,
        target_loss=settings.target_loss,
        loss_reduction=reduction,
        reached_target=bisection.reached_target,
        selection_loss=loss_at(k),
        test_reached_target=circuit_loss <= settings.target_loss,
        nodes=circuit.nodes,
        edges=circuit.edges,
        total_nodes=layout.n_nodes,
        masks_kept=k,
        active_after_training=ranking.n_active,
        circuit_loss=circuit_loss,
        calibrated_loss=test_loss(circuit_gaps, calibration.scale, calibration.shift, name="calibrated_loss"),
        calibration_train_loss_before=float(two_way_loss(train_gaps, calibration_correct, reduction=reduction)),
        calibration_train_loss_after=float(
            two_way_loss(train_gaps, calibration_correct, calibration.scale, calibration.shift, reduction)
        ),
        logit_scale=calibration.scale,
        logit_bias=calibration.shift,
        full_model_loss=test_loss(full_gaps, name="full_model_loss"),
        inverse_loss=inverse_loss,
        random_circuit_loss=random_loss,
        test_pairs=test.n_pairs,
        pairs={
            "train": train.n_pairs,
            "calibration": calibration_set.n_pairs,
            "val": evaluation.n_pairs,
            "test": test.n_pairs,
        },
        edge_counts=circuit.counts(),
        bisection=[{"k": k_, "nodes": ranking.nodes(k_), "loss": loss} for k_, loss in bisection.probes],
        train_history=history,
        kept={name: idx.tolist() for name, idx in kept.items()},
        hyper=hyper.model_dump(),
        work=masked.work.to_json(),
        cost=float(masked.work.cost),
        timings=timings,
        sweep=sweep,
        circuit=circuit_kind(k, layout.n_masks, bisection.reached_target),
        test_pair_losses=per_pair,
        loss_vs_k=curve_rows,
        ranking=trial_ranking,
    )


def val_loss(masked: MaskedModel, pairs: TaskBatch, pieces: list[TaskBatch], mask: Tensor, reduction: str) -> float:
    """The loss on `pairs` (in evaluation chunks `pieces`) with node mask `mask`."""
    return float(two_way_loss(masked.gaps(pieces, mask.to(masked.device)), pairs.correct, reduction=reduction))


def loss_vs_k(
    masked: MaskedModel,
    ranking: TrialRanking,
    val: ValPairs,
    settings: PruneConfig,
    coarse_losses: dict[int, float] | None = None,
) -> list[dict[str, float]]:
    """The loss-vs-size curve of a trial's ranking (`TrialResult.loss_vs_k`): a row per k of the log-spaced sizes
    (settings.curve_points) and of the bisection's probes, sorted by k. Probed ks carry the loss on all val pairs the
    bisection measured; the others the loss on the coarse quarter (`coarse_losses` where already measured). At the
    log-spaced sizes, also the loss with only the top-k circuit ablated (inverse_loss, Fig. 32), on the row's pairs."""
    reduction = settings.loss_reduction
    order = Ranking(ranking.tau, masked.layout)
    probed = ranking.val_losses
    coarse = dict(coarse_losses or {})

    def coarse_loss_at(k: int) -> float:
        if k not in coarse:
            coarse[k] = val_loss(masked, val.coarse, val.coarse_chunks, order.top_k(k), reduction)
        return coarse[k]

    sizes = log_spaced_sizes(masked.layout.n_masks, settings.curve_points)
    curve = [
        {
            "k": k,
            "nodes": order.nodes(k),
            "edges": order.edges(k, masked.model),
            "loss": probed[k] if k in probed else coarse_loss_at(k),
            "val_pairs": val.full.n_pairs if k in probed else val.coarse.n_pairs,
        }
        for k in sorted(set(sizes) | set(probed))
    ]
    for row in (row for row in curve if row["k"] in sizes):
        pairs, pieces = (val.full, val.full_chunks) if row["k"] in probed else (val.coarse, val.coarse_chunks)
        row["inverse_loss"] = val_loss(masked, pairs, pieces, 1 - order.top_k(row["k"]), reduction)
    return curve


def add_loss_vs_k(inputs: PruneInputs, settings: PruneConfig, result: TrialResult) -> None:
    """Fill in `result.loss_vs_k` from the ranking its trial carried (`TrialResult.ranking`): the curve of the
    circuit that is written, once per cell (not in every CARBS trial). Its wall time is `timings["curve_s"]`."""
    if result.ranking is None:
        raise ValueError(f"the trial with seed {result.seed} carries no ranking: its loss-vs-size curve needs one")
    started = time.perf_counter()
    masked = cell_masked_model(inputs, settings)
    val = ValPairs.of(by_length(inputs.task_data.eval.to(masked.device)), settings)
    result.loss_vs_k = loss_vs_k(masked, result.ranking, val, settings)
    result.timings = {**result.timings, "curve_s": time.perf_counter() - started}


def cell_masked_model(inputs: PruneInputs, settings: PruneConfig) -> MaskedModel:
    """The cell's model with the ablation its trials pruned under (fresh work counts)."""
    layout = NodeLayout(inputs.model.config, tie_qk=settings.tie_qk_masks)
    return MaskedModel(inputs.model, layout, ablation_values(layout, inputs.means, settings.ablation))


def rounded_pair_losses(losses: Tensor) -> list[float]:
    """Per-pair losses for result.json: 6 significant digits keep a bootstrap's interval and the file small."""
    return [float(f"{value:.6g}") for value in losses.tolist()]


@torch.no_grad()
def loss_without_each_node(
    masked: MaskedModel,
    batch: TaskBatch,
    circuit_mask: Tensor,
    batch_pairs: int,
    reduction: str,
    positions: list[int] | None = None,
) -> dict[int, float]:
    """{node position in node space: the loss on `batch` of the circuit with that one node also ablated}, for every
    kept node or the kept ones among `positions`; the ablations run ABLATIONS_PER_FORWARD at a time, stacked on a
    trial dimension (`MaskedModel.gaps_each`)."""
    batch = by_length(batch)
    pieces = chunks(batch, EVAL_CHUNK_FACTOR * batch_pairs)
    kept = torch.nonzero(circuit_mask.cpu() > 0).flatten().tolist()
    if positions is not None:
        chosen = set(positions)
        kept = [position for position in kept if position in chosen]
    losses = {}
    for first in range(0, len(kept), ABLATIONS_PER_FORWARD):
        group = kept[first : first + ABLATIONS_PER_FORWARD]
        masks = circuit_mask.repeat(len(group), 1)
        masks[torch.arange(len(group)), torch.tensor(group)] = 0
        gaps = masked.gaps_each(pieces, masks)
        for position, row in zip(group, gaps):
            losses[position] = float(two_way_loss(row, batch.correct, reduction=reduction))
    return losses


def binarized_losses(
    masked: MaskedModel, mask: Tensor, fit: TaskBatch, val: TaskBatch, test: TaskBatch, settings: PruneConfig
) -> dict[str, float]:
    """Binarize every kept node of `mask` (node space) with step functions fitted on `fit` (train pairs,
    `binarize.fit_binarization`: initialisation, then refinement, kept unless it loses on `val`). Returns the
    test loss with every kept node on its exact step ("binarized_loss"), the same with the initialisation alone
    ("binarized_init_loss"), and the final psi_0 loss on `fit` ("binarized_fit_loss")."""
    reduction = settings.loss_reduction
    fit_chunks, val_chunks, test_chunks = (chunks(pairs, settings.batch_pairs) for pairs in (fit, val, test))
    nodes = torch.nonzero(mask.cpu() > 0).flatten()
    activations = masked.activations(fit_chunks, mask, nodes)
    fit_eval_chunks = eval_chunks(fit, settings)  # no gradients: a node's three thresholds in one forward

    def fit_losses_each(steps: StepFunctions) -> list[float]:
        gaps = masked.gaps_each(fit_eval_chunks, mask, steps)
        return [float(two_way_loss(row, fit.correct, reduction=reduction)) for row in gaps]

    def train_loss_with(steps: StepFunctions) -> Tensor:  # differentiable; the mean, as in mask training
        return two_way_loss(torch.cat([masked.gap(chunk, mask, steps) for chunk in fit_chunks]), fit.correct)

    def val_loss_with(steps: StepFunctions) -> float:
        return float(two_way_loss(masked.gaps(val_chunks, mask, steps), val.correct, reduction=reduction))

    def test_loss_with(steps: StepFunctions) -> float:
        return float(two_way_loss(masked.gaps(test_chunks, mask, steps), test.correct, reduction=reduction))

    fitted = fit_binarization(
        activations,
        nodes,
        fit_losses_each,
        train_loss_with,
        settings.binarize_steps,
        settings.binarize_lr,
        val_loss_with,
    )
    final_gaps = masked.gaps(test_chunks, mask, fitted.final)
    return {
        "binarized_loss": float(two_way_loss(final_gaps, test.correct, reduction=reduction)),
        BINARIZED_PAIR_LOSSES: rounded_pair_losses(pair_losses(final_gaps, test.correct, reduction=reduction)),
        "binarized_init_loss": test_loss_with(fitted.init),
        "binarized_fit_loss": fitted.final_loss,
        "binarized_own_scale_loss": own_scale_loss(final_gaps, masked.gaps(test_chunks, mask), test.correct, reduction),
    }


def own_scale_loss(binarized: Tensor, circuit: Tensor, correct: Tensor, reduction: str) -> float:
    """The loss of the binarized gaps rescaled to the circuit's own gap RMS: fitted step levels can grow the logit
    gap like a calibration scale (driving the loss to 0 whenever the sign is right); this takes that back out."""
    rms = binarized.pow(2).mean().sqrt()
    scale = circuit.pow(2).mean().sqrt() / rms if rms > 0 else torch.ones(())
    return float(two_way_loss(binarized, correct, scale, reduction=reduction))


def add_binarization(inputs: PruneInputs, settings: PruneConfig, result: TrialResult) -> None:
    """Fill in the binarized losses (App. C, `binarized_losses`) of every circuit of `result.sweep` that reached
    its target, and of the circuit itself (None where the target was missed: there is no circuit to binarize).

    Run once on the circuit that is written (not in every CARBS trial); the step functions are fitted on the
    first `binarize_pairs` pairs of the train pool, the losses are measured on the test pairs. It costs about
    3 x nodes forward passes of those pairs (one per node and candidate threshold), then `binarize_steps`
    forward and backward passes of them."""
    if settings.binarize_pairs == 0:  # off (a control cell): the sweep's rows say so, as for a missed target
        result.sweep = [{**row, **dict.fromkeys(BINARIZED_KEYS)} for row in result.sweep]
        return
    masked = cell_masked_model(inputs, settings)
    device, layout = masked.device, masked.layout
    train = inputs.task_data.train
    fit = train.select(range(min(settings.binarize_pairs, train.n_pairs))).to(device)
    result.sweep = [dict(row) for row in result.sweep]  # the trial's own record (trials.jsonl) stays as it ran
    val, test = inputs.task_data.eval.to(device), inputs.task_data.test.to(device)
    for row in result.sweep:
        if not row["reached_target"]:  # no circuit at this target (bisection kept every active node)
            row.update(dict.fromkeys(BINARIZED_KEYS))
            continue
        losses = binarized_losses(masked, kept_mask(layout, row["kept"]).to(device), fit, val, test, settings)
        per_pair = losses.pop(BINARIZED_PAIR_LOSSES)
        row.update(losses)
        if row["target_loss"] == result.target_loss:
            result.test_pair_losses = {**result.test_pair_losses, "binarized_loss": per_pair}
            result.binarized_loss, result.binarized_init_loss = row["binarized_loss"], row["binarized_init_loss"]
            result.binarized_own_scale_loss = row["binarized_own_scale_loss"]
