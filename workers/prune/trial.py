"""Pruning (paper §2.2, Appendix A.5): the smallest circuit that still does a task.

One trial (`run_trial`, pure: tensors in, a JSON-able `TrialResult` out):

1. Train masks. One parameter tau per node (per q/k channel pair when tied),
   initialised N(init_noise_bias, init_noise_scale) and clamped to [-1, 1]
   after every step. The forward keeps a node iff tau > 0 (deleted nodes are
   mean- or zero-ablated, `nn.masks`); the backward uses the sigmoid
   derivative at tau / heaviside_temp. Loss = two-way task loss + k_coef x
   (number of kept nodes). AdamW on tau only, global gradient RMS clipped to
   `grad_clip`, lr warmed up linearly over lr_warmup_frac then decayed
   linearly to 0. Each step draws batch_pairs pairs from the train pool.
2. Discretize. Rank mask entries by tau; bisect for the smallest k whose
   top-k circuit reaches target_loss on the fixed eval set (val split).
   Also evaluate log-spaced k along the same ranking (loss-vs-size curve, val).
3. Calibrate the circuit's logits: scale and shift of the candidate logit
   gap (logit[candidate 1] - logit[candidate 0]), `calibration_steps` LBFGS
   iterations on a fixed sample of the train pool.
4. Report on held-out pairs (test split), never used to train or select:
   full model, circuit alone, calibrated circuit, model without the circuit
   (inverse pruning, Fig. 32), and a random circuit with the same number of
   nodes at every location.

Splits (DESIGN.md, "Definitions"): masks train on the task's train pairs, bisection
and CARBS's choice of the best trial use the val pairs (`selection_loss`), and every
reported loss (`full_model_loss`, `circuit_loss`, `calibrated_loss`, `inverse_loss`,
`random_circuit_loss`) is measured on the `test_pairs` test pairs.

Task loss (`settings.loss_reduction`): "mean" averages the two-way cross-entropy over a
pair's two prompts; "pair_sum" sums them, as the reference release stores it (twice
the mean). The target comparison of bisection and every reported loss use it. Mask
training optimises the mean in both (a constant factor that k_coef absorbs), so the
choice changes only the target: pair_sum at target t keeps exactly the circuit that
mean keeps at t / 2 (a stricter target, so a larger circuit).

Work: `TrialResult.work` counts the forward passes a trial ran (prompt rows and
token positions; a backward pass is counted as two forwards), and `cost` is that
count in token-forwards: a deterministic measure for CARBS, unlike wall time
(which stays in `timings`).

`run_prune` is the stage worker: load checkpoint, tokenizer, means and task
data (`load_prune_inputs`); run one trial with `params.hyper`; write
circuit.json, circuit.html, result.json and loss_vs_k.png (its data in loss_vs_k.json and .csv)
(`write_prune_outputs`, shared with the CARBS-tuned cell of `tune.py`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor

from ...tasks import TaskBatch, candidate_logits, load_task, load_tokenizer
from ..context import WorkContext
from ..mean_cache.worker import load_means
from ..nn.circuit import build_circuit, circuit_to_json, kept_indices, node_id
from ..nn.gpt import GPT, load_checkpoint
from ..nn.masks import NodeLayout, ablation_values, heaviside, mask_interventions
from ..nn.sparsity import warmup_decay_lr
from ..train.loader import ShardLoader
from ..train.summary import checkpoint_summary
from .binarize import StepFunctions, fit_binarization
from .circuit_page import render_circuit_html
from .config import PruneConfig, PruneHyperparams
from .node_examples import node_examples

ProgressFn = Callable[[dict[str, Any]], None]

# ------------------------------------------------------------------------ task data


@dataclass
class TaskData:
    train: TaskBatch  # pool: training batches and the calibration sample are drawn from it
    eval: TaskBatch  # fixed selection set (val split): bisection, curve, CARBS's choice
    test: TaskBatch  # fixed held-out set (test split): every reported loss


def chunks(batch: TaskBatch, pairs_per_chunk: int) -> list[TaskBatch]:
    return [
        batch.select(range(s, min(s + pairs_per_chunk, batch.n_pairs)))
        for s in range(0, batch.n_pairs, pairs_per_chunk)
    ]


def candidate_gap(logits: Tensor, batch: TaskBatch) -> Tensor:
    """logit(candidate 1) - logit(candidate 0) at each row's eval position: [2N]."""
    pair = candidate_logits(logits, batch).float()
    return pair[:, 1] - pair[:, 0]


LOSS_REDUCTIONS = ("mean", "pair_sum")


def two_way_loss(
    gap: Tensor, correct: Tensor, scale: Tensor | float = 1.0, shift: Tensor | float = 0.0, reduction: str = "mean"
) -> Tensor:
    """Cross-entropy of the correct candidate under the two-way softmax, averaged over pairs.

    reduction "mean": the mean over a pair's two prompts (= the mean over all prompts);
    "pair_sum": their sum, as the reference release stores it (twice the mean).
    With logits (l0, l1) and z = l1 - l0: -log softmax = softplus(-z) if candidate 1 is correct,
    softplus(z) otherwise. `scale`/`shift` calibrate z (a shift of z is a bias towards candidate 1).
    """
    z = gap * scale + shift
    sign = correct.to(z.dtype) * 2 - 1
    per_prompt = F.softplus(-sign * z)
    if reduction == "mean":
        return per_prompt.mean()
    if reduction == "pair_sum":  # rows 2i and 2i+1 are the two prompts of pair i
        return per_prompt.reshape(-1, 2).sum(dim=1).mean()
    raise ValueError(f"unknown loss reduction {reduction!r}; choose one of {', '.join(LOSS_REDUCTIONS)}")


@dataclass
class Work:
    """The forward passes a trial ran: a deterministic measure of its cost (wall time is not)."""

    forwards: int = 0  # model calls
    rows: int = 0  # prompts through the model
    tokens: int = 0  # token positions through the model (padded batch width x rows)
    backward_tokens: int = 0  # token positions through a backward pass (mask training)

    def add(self, batch: TaskBatch) -> None:
        self.forwards += 1
        self.rows += int(batch.tokens.shape[0])
        self.tokens += int(batch.tokens.numel())

    @property
    def cost(self) -> int:
        """Token-forwards, a backward pass counted as two forwards (the usual FLOP ratio)."""
        return self.tokens + 2 * self.backward_tokens

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "cost": self.cost}


# ------------------------------------------------------------------- masked model


class MaskedModel:
    """The frozen model under node masks, read out as candidate logit gaps at the eval positions."""

    def __init__(self, model: GPT, layout: NodeLayout, ablation: Tensor):
        self.model = model
        self.layout = layout
        self.device = next(model.parameters()).device
        self.ablation = ablation.to(self.device)
        self.work = Work()

    def interventions(self, node_mask: Tensor, steps: StepFunctions | None = None) -> dict[str, Any]:
        """The mask gates at every node location, then the step functions `steps` at their nodes (App. C)."""
        gates = mask_interventions(self.layout, node_mask, self.ablation)
        if steps is None:
            return gates
        return {name: steps.intervention(gates[name], s) for name, s in self.layout.node_slices.items()}

    def gap(self, batch: TaskBatch, node_mask: Tensor | None, steps: StepFunctions | None = None) -> Tensor:
        """Candidate logit gaps [2N]; node_mask None runs the unmasked model."""
        self.work.add(batch)
        interventions = None if node_mask is None else self.interventions(node_mask, steps)
        logits, _ = self.model(batch.tokens, interventions=interventions, positions=batch.eval_pos)
        return candidate_gap(logits, batch)

    @torch.no_grad()
    def gaps(self, batches: list[TaskBatch], node_mask: Tensor | None, steps: StepFunctions | None = None) -> Tensor:
        return torch.cat([self.gap(batch, node_mask, steps) for batch in batches])

    @torch.no_grad()
    def activations(self, batches: list[TaskBatch], node_mask: Tensor, nodes: Tensor) -> Tensor:
        """The activations [positions, len(nodes)] of node-space indices `nodes` under `node_mask`, at every
        real position (up to each prompt's eval position; padding after it is left out)."""
        rows = []
        for batch in batches:
            self.work.add(batch)
            _, recorded = self.model(
                batch.tokens,
                record=self.layout.names,
                interventions=self.interventions(node_mask),
                positions=batch.eval_pos,
            )
            flat = torch.cat([recorded[name] for name in self.layout.names], dim=-1)  # [B, T, n_nodes]
            real = torch.arange(flat.shape[1], device=flat.device)[None, :] <= batch.eval_pos[:, None]
            rows.append(flat[real][:, nodes.to(flat.device)].float().cpu())
        return torch.cat(rows)


# ------------------------------------------------------------------- mask training


def lr_at(step: int, steps: int, lr: float, warmup_frac: float) -> float:
    """Linear warmup over warmup_frac of the steps (rounded), then linear decay to 0."""
    return warmup_decay_lr(lr, step, steps, int(round(warmup_frac * steps)))


def init_tau(n_masks: int, hyper: PruneHyperparams, generator: torch.Generator) -> Tensor:
    tau = hyper.init_noise_bias + hyper.init_noise_scale * torch.randn(n_masks, generator=generator)
    return tau.clamp_(-1.0, 1.0)


def train_masks(
    masked: MaskedModel,
    train: TaskBatch,
    hyper: PruneHyperparams,
    settings: PruneConfig,
    generator: torch.Generator,
    progress: ProgressFn | None = None,
) -> tuple[Tensor, list[dict[str, float]]]:
    """Learned tau [n_masks] and a short history of (step, task_loss, nodes, lr)."""
    layout, device = masked.layout, masked.device
    tau = init_tau(layout.n_masks, hyper, generator).to(device).requires_grad_(True)
    multiplicity = layout.multiplicity.to(device)
    optimizer = torch.optim.AdamW([tau], lr=hyper.lr, betas=(0.9, 1.0 - hyper.inv_beta2), weight_decay=hyper.wd)
    max_norm = settings.grad_clip * math.sqrt(layout.n_masks)  # RMS limit as a norm limit
    log_every = max(1, settings.steps // 100)
    history = []
    for step in range(settings.steps):
        lr = lr_at(step, settings.steps, hyper.lr, hyper.lr_warmup_frac)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = train.select(_draw_pairs(train.n_pairs, settings.batch_pairs, generator))
        gate = heaviside(tau, hyper.heaviside_temp)
        task_loss = two_way_loss(
            masked.gap(batch, layout.node_mask(gate)), batch.correct
        )  # mean for either loss_reduction
        nodes = (gate * multiplicity).sum()
        loss = task_loss + hyper.k_coef * nodes
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        masked.work.backward_tokens += int(batch.tokens.numel())
        torch.nn.utils.clip_grad_norm_([tau], max_norm)
        optimizer.step()
        with torch.no_grad():
            tau.clamp_(-1.0, 1.0)
        if step % log_every == 0 or step == settings.steps - 1:
            row = {"step": step, "task_loss": float(task_loss.detach()), "nodes": float(nodes.detach()), "lr": lr}
            history.append(row)
            if progress is not None:
                progress(
                    {
                        "completed": step + 1,
                        "total": settings.steps,
                        "description": f"masks: loss {row['task_loss']:.3f}, {int(row['nodes'])} nodes",
                    }
                )
    return tau.detach(), history


def _draw_pairs(n_pairs: int, batch_pairs: int, generator: torch.Generator) -> Tensor:
    if batch_pairs <= n_pairs:
        return torch.randperm(n_pairs, generator=generator)[:batch_pairs]
    return torch.randint(n_pairs, (batch_pairs,), generator=generator)


# ------------------------------------------------------------------ discretization


@dataclass
class Bisection:
    k: int
    reached_target: bool
    probes: list[tuple[int, float]]  # (k, loss) in the order probed


def smallest_sufficient_k(loss_at: Callable[[int], float], k_max: int, target: float) -> Bisection:
    """The smallest k in [0, k_max] with loss_at(k) <= target, for a loss that falls with k.

    When even k_max misses the target, returns k_max with reached_target False.
    """
    probes: list[tuple[int, float]] = []

    def probe(k: int) -> float:
        loss = loss_at(k)
        probes.append((k, loss))
        return loss

    if not probe(k_max) <= target:
        return Bisection(k_max, False, probes)
    low, high = 0, k_max  # loss_at(high) <= target; every k < low misses it
    while low < high:
        middle = (low + high) // 2
        if probe(middle) <= target:
            high = middle
        else:
            low = middle + 1
    return Bisection(high, True, probes)


def log_spaced_sizes(k_max: int, points: int) -> list[int]:
    if k_max < 1 or points < 1:
        return []
    return sorted({int(round(k)) for k in np.geomspace(1, k_max, points)})


class Ranking:
    """Mask entries ranked by tau (descending); top_k(k) keeps the first k, vectorised."""

    def __init__(self, tau: Tensor, layout: NodeLayout):
        order = torch.argsort(tau, descending=True, stable=True)
        self.rank = torch.empty_like(order)
        self.rank[order] = torch.arange(order.numel(), device=order.device)
        self.layout = layout
        self.n_active = int((tau > 0).sum())
        self.nodes_in_top = torch.cat([torch.zeros(1), torch.cumsum(layout.multiplicity[order.cpu()], 0)]).long()

    def top_k(self, k: int) -> Tensor:
        """Node mask [n_nodes] of the circuit of the k best-ranked mask entries."""
        return self.layout.node_mask((self.rank < k).float())

    def nodes(self, k: int) -> int:
        return int(self.nodes_in_top[k])

    def edges(self, k: int, model: GPT) -> int:
        """Weight edges among the nodes of the top-k circuit (`nn.circuit`)."""
        return build_circuit(model, kept_indices(self.layout.split(self.top_k(k)))).edges


@dataclass
class Calibration:
    scale: float = 1.0
    shift: float = 0.0


def fit_calibration(gap: Tensor, correct: Tensor, steps: int) -> Calibration:
    """Scale and shift of the candidate logit gap minimising the two-way loss (LBFGS).

    Either loss reduction has the same minimiser."""
    if steps == 0:
        return Calibration()
    gap, correct = gap.detach().float().cpu(), correct.cpu()
    scale = torch.ones((), requires_grad=True)
    shift = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([scale, shift], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = two_way_loss(gap, correct, scale, shift)
        loss.backward()
        return loss

    optimizer.step(closure)
    fitted = Calibration(scale.item(), shift.item())
    if not (math.isfinite(fitted.scale) and math.isfinite(fitted.shift)):
        return Calibration()
    return fitted


def random_like(mask: Tensor, layout: NodeLayout, generator: torch.Generator) -> Tensor:
    """A mask-space circuit with as many kept entries per location as `mask`, chosen at random."""
    out = torch.zeros(layout.n_masks)
    kept = mask.cpu() > 0
    for s in layout.mask_slices.values():
        width = s.stop - s.start
        count = int(kept[s].sum())
        out[s.start + torch.randperm(width, generator=generator)[:count]] = 1.0
    return out.to(mask.device)


# ------------------------------------------------------------------------- trial

BINARIZED_KEYS = ("binarized_loss", "binarized_init_loss", "binarized_fit_loss")  # per sweep row (App. C)


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
    loss_vs_k: list[dict[str, float]]  # {k, nodes, loss} sorted by k: curve points and probes (val)
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

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
) -> TrialResult:
    """One pruning trial; no I/O. The caller sets torch's thread count."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    model.eval().requires_grad_(False)
    device = next(model.parameters()).device
    layout = NodeLayout(model.config, tie_qk=settings.tie_qk_masks)
    masked = MaskedModel(model, layout, ablation_values(layout, means, settings.ablation))
    generator = torch.Generator().manual_seed(seed)
    reduction = settings.loss_reduction
    train, evaluation, test = task_data.train.to(device), task_data.eval.to(device), task_data.test.to(device)
    eval_chunks = chunks(evaluation, settings.batch_pairs)
    test_chunks = chunks(test, settings.batch_pairs)
    calibration_set = train.select(torch.randperm(train.n_pairs, generator=generator)[: settings.eval_pairs])
    calibration_chunks = chunks(calibration_set, settings.batch_pairs)
    calibration_correct = calibration_set.correct

    tau, history = train_masks(masked, train, hyper, settings, generator, progress)
    timings["train_s"] = time.perf_counter() - started

    mark = time.perf_counter()
    ranking = Ranking(tau.cpu(), layout)
    eval_gaps: dict[int, Tensor] = {}

    def loss_at(k: int) -> float:
        if k not in eval_gaps:
            eval_gaps[k] = masked.gaps(eval_chunks, ranking.top_k(k).to(device))
        return float(two_way_loss(eval_gaps[k], evaluation.correct, reduction=reduction))

    bisections = {t: smallest_sufficient_k(loss_at, ranking.n_active, t) for t in settings.target_sweep}
    bisection = bisections[settings.target_loss]
    timings["bisect_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    for k in log_spaced_sizes(layout.n_masks, settings.curve_points):
        loss_at(k)
    curve = [
        {"k": k, "nodes": ranking.nodes(k), "edges": ranking.edges(k, model), "loss": loss_at(k)}
        for k in sorted(eval_gaps)
    ]
    timings["curve_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    k = bisection.k
    circuit_mask = ranking.top_k(k).to(device)
    train_gaps = masked.gaps(calibration_chunks, circuit_mask)
    calibration = fit_calibration(train_gaps, calibration_correct, settings.calibration_steps)
    timings["calibrate_s"] = time.perf_counter() - mark

    # Reporting: held-out test pairs, after every choice (masks, k, calibration) is made.
    mark = time.perf_counter()

    def test_loss(gaps: Tensor, scale: float = 1.0, shift: float = 0.0) -> float:
        return float(two_way_loss(gaps, test.correct, scale, shift, reduction=reduction))

    random_mask = layout.node_mask(random_like((ranking.rank < k).float(), layout, generator)).to(device)
    circuit_gaps = masked.gaps(test_chunks, circuit_mask)
    # every mask on is the unmasked model, bit for bit
    full_gaps = masked.gaps(test_chunks, ranking.top_k(layout.n_masks).to(device))
    inverse_loss = test_loss(masked.gaps(test_chunks, 1 - circuit_mask))
    random_loss = test_loss(masked.gaps(test_chunks, random_mask))
    circuit_loss = test_loss(circuit_gaps)
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
                "kept": {name: idx.tolist() for name, idx in kept_indices(layout.split(mask)).items()},
            }
        )
    timings["sweep_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started

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
        calibrated_loss=test_loss(circuit_gaps, calibration.scale, calibration.shift),
        calibration_train_loss_before=float(two_way_loss(train_gaps, calibration_correct, reduction=reduction)),
        calibration_train_loss_after=float(
            two_way_loss(train_gaps, calibration_correct, calibration.scale, calibration.shift, reduction)
        ),
        logit_scale=calibration.scale,
        logit_bias=calibration.shift,
        full_model_loss=test_loss(full_gaps),
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
        loss_vs_k=curve,
        train_history=history,
        kept={name: idx.tolist() for name, idx in kept.items()},
        hyper=hyper.model_dump(),
        work=masked.work.to_json(),
        cost=float(masked.work.cost),
        timings=timings,
        sweep=sweep,
    )


@torch.no_grad()
def loss_without_each_node(
    masked: MaskedModel, batch: TaskBatch, circuit_mask: Tensor, batch_pairs: int, reduction: str
) -> dict[int, float]:
    """{node position in node space: the test loss of the circuit with that one node also ablated}."""
    pieces = chunks(batch, batch_pairs)
    losses = {}
    for position in torch.nonzero(circuit_mask.cpu() > 0).flatten().tolist():
        mask = circuit_mask.clone()
        mask[position] = 0
        losses[position] = float(two_way_loss(masked.gaps(pieces, mask), batch.correct, reduction=reduction))
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

    def fit_loss_with(steps: StepFunctions) -> float:
        return float(two_way_loss(masked.gaps(fit_chunks, mask, steps), fit.correct, reduction=reduction))

    def train_loss_with(steps: StepFunctions) -> Tensor:  # differentiable; the mean, as in mask training
        return two_way_loss(torch.cat([masked.gap(chunk, mask, steps) for chunk in fit_chunks]), fit.correct)

    def val_loss_with(steps: StepFunctions) -> float:
        return float(two_way_loss(masked.gaps(val_chunks, mask, steps), val.correct, reduction=reduction))

    def test_loss_with(steps: StepFunctions) -> float:
        return float(two_way_loss(masked.gaps(test_chunks, mask, steps), test.correct, reduction=reduction))

    fitted = fit_binarization(
        activations, nodes, fit_loss_with, train_loss_with, settings.binarize_steps, settings.binarize_lr, val_loss_with
    )
    return {
        "binarized_loss": test_loss_with(fitted.final),
        "binarized_init_loss": test_loss_with(fitted.init),
        "binarized_fit_loss": fitted.final_loss,
    }


def add_binarization(inputs: PruneInputs, settings: PruneConfig, result: TrialResult) -> None:
    """Fill in the binarized losses (App. C, `binarized_losses`) of every circuit of `result.sweep` that reached
    its target, and of the circuit itself (None where the target was missed: there is no circuit to binarize).

    Run once on the circuit that is written (not in every CARBS trial); the step functions are fitted on the
    first `binarize_pairs` pairs of the train pool, the losses are measured on the test pairs. It costs about
    3 x nodes forward passes of those pairs (one per node and candidate threshold), then `binarize_steps`
    forward and backward passes of them."""
    if settings.binarize_pairs == 0:
        return
    model = inputs.model
    device = next(model.parameters()).device
    layout = NodeLayout(model.config, tie_qk=settings.tie_qk_masks)
    masked = MaskedModel(model, layout, ablation_values(layout, inputs.means, settings.ablation))
    train = inputs.task_data.train
    fit = train.select(range(min(settings.binarize_pairs, train.n_pairs))).to(device)
    result.sweep = [dict(row) for row in result.sweep]  # the trial's own record (trials.jsonl) stays as it ran
    val, test = inputs.task_data.eval.to(device), inputs.task_data.test.to(device)
    for row in result.sweep:
        if not row["reached_target"]:  # no circuit at this target (bisection kept every active node)
            row.update(dict.fromkeys(BINARIZED_KEYS))
            continue
        mask = torch.zeros(layout.n_nodes)
        for name, idx in row["kept"].items():
            mask[layout.node_slices[name].start + torch.tensor(idx, dtype=torch.long)] = 1.0
        row.update(binarized_losses(masked, mask.to(device), fit, val, test, settings))
        if row["target_loss"] == result.target_loss:
            result.binarized_loss, result.binarized_init_loss = row["binarized_loss"], row["binarized_init_loss"]


# -------------------------------------------------------------------------- stage

RESULT_FILE, CIRCUIT_FILE, CIRCUIT_PAGE, CURVE_PLOT = "result.json", "circuit.json", "circuit.html", "loss_vs_k.png"


def load_task_data(task: str, tokenizer: Tokenizer, params: PruneConfig, max_tokens: int) -> TaskData:
    # Never more train pairs than the steps and the calibration sample can use (pair i does not
    # depend on how many are generated, so a smaller pool is a prefix of the full one).
    train_pairs = min(params.train_pool_pairs, max(params.steps * params.batch_pairs, params.eval_pairs))
    return TaskData(
        train=load_task(task, tokenizer, "train", train_pairs, params.seed, max_tokens),
        eval=load_task(task, tokenizer, "val", params.eval_pairs, params.seed, max_tokens),
        test=load_task(task, tokenizer, "test", params.eval_pairs, params.seed, max_tokens),
    )


def plot_loss_vs_size(result: TrialResult, path: Path) -> None:
    """Val loss of the top-k circuits along the ranking against nodes and against edges (the curve behind the
    paper's Fig. 2), the circuit of every swept target (val and test); the numbers beside it (`save_data`)."""
    from ..plots import GRID_ALPHA, LEGEND_FONTSIZE, new_figure, save, save_data

    fig = new_figure(11, 4.5)
    axes = fig.subplots(1, 2, sharey=True)
    curve = [row for row in result.loss_vs_k if row["nodes"] > 0]
    probes = [row for row in result.bisection if row["nodes"] > 0]
    circuits = [row for row in result.sweep if row["nodes"] > 0]
    for axis, size in zip(axes, ("nodes", "edges")):
        points = [row for row in curve if size in row and row[size] > 0]  # results from before edges were recorded
        axis.plot([r[size] for r in points], [r["loss"] for r in points], "o-", ms=3, label="top-k circuit (val)")
        if size == "nodes":
            axis.plot(
                [r["nodes"] for r in probes], [r["loss"] for r in probes], "x", color="black", label="bisection probes"
            )
        for target in sorted({r["target_loss"] for r in result.sweep} | {result.target_loss}):
            axis.axhline(target, color="grey", ls="--", lw=0.8)
        axis.axhline(
            result.full_model_loss, color="tab:green", ls=":", label=f"full model, test {result.full_model_loss:.3g}"
        )
        shown = [r for r in circuits if r[size] > 0]
        axis.plot(
            [r[size] for r in shown],
            [r["selection_loss"] for r in shown],
            "*",
            ms=12,
            color="tab:red",
            label="circuit per target (val)",
        )
        axis.plot(
            [r[size] for r in shown],
            [r["circuit_loss"] for r in shown],
            "D",
            ms=6,
            color="tab:purple",
            label=f"circuit per target, test ({result.test_pairs} pairs)",
        )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(f"{size} kept")
        axis.grid(alpha=GRID_ALPHA, which="both")
    axes[0].set_ylabel(f"two-way task loss ({result.loss_reduction})")
    axes[0].legend(fontsize=LEGEND_FONTSIZE)
    status = "" if result.reached_target else " (target not reached)"
    fig.suptitle(
        f"{result.task}: loss vs circuit size, target {result.target_loss:g}: {result.nodes} nodes, "
        f"{result.edges} edges{status}"
    )
    save(fig, path)
    save_data(
        [{"kind": "curve", **row} for row in result.loss_vs_k]
        + [{"kind": "circuit", **{k: v for k, v in row.items() if k != "kept"}} for row in result.sweep],
        path,
    )


@dataclass
class PruneInputs:
    """What trials of one (checkpoint, task) cell share, loaded once."""

    checkpoint: Path
    model: GPT
    means: dict[str, Tensor] | None
    tokenizer: Tokenizer
    task_data: TaskData
    tokens: Path  # the tokenize artifact: the pretraining rows of the activation examples


def load_prune_inputs(
    checkpoint: Path, mean_cache: Path | None, tokens: Path, task: str, params: PruneConfig, device: str = "cpu"
) -> PruneInputs:
    """Model, means (None for zero ablation), tokenizer and task data; `mean_cache` is only read for mean ablation."""
    model = load_checkpoint(checkpoint, device=device).eval().requires_grad_(False)
    means = load_means(mean_cache) if params.ablation == "mean" else None
    tokenizer = load_tokenizer(tokens)
    task_data = load_task_data(task, tokenizer, params, min(params.max_tokens, model.config.n_ctx))
    return PruneInputs(Path(checkpoint), model, means, tokenizer, task_data, Path(tokens))


def pretraining_rows(tokens: Path, count: int) -> Tensor:
    """The first `count` rows of the val split (fewer if it has fewer), inputs only: [N, n_ctx]."""
    batches, total = [], 0
    for batch in ShardLoader(tokens, "val", count).iter_eval(count):
        batches.append(batch[: count - total])
        total += batches[-1].shape[0]
        if total == count:
            break
    return torch.cat(batches)[:, :-1]


def viewer_sections(
    inputs: PruneInputs, params: PruneConfig, result: TrialResult, layout: NodeLayout, ablation: Tensor
) -> dict[str, Any]:
    """circuit.json's "node_ablation" (test loss with each node removed, for circuits of at most
    viewer.ablate_each_max_nodes nodes) and "activations" (`node_examples`) for the circuit page."""
    viewer, model = params.viewer, inputs.model
    device = next(model.parameters()).device
    masked = MaskedModel(model, layout, ablation)
    circuit_mask = layout.flatten(
        {
            name: torch.zeros(width).index_fill_(0, torch.tensor(result.kept[name], dtype=torch.long), 1.0)
            for name, width in layout.locations
        }
    ).to(device)
    test = inputs.task_data.test.to(device)
    sections: dict[str, Any] = {}
    if 0 < result.nodes <= viewer.ablate_each_max_nodes:
        names = {
            position: node_id(name, position - s.start)
            for name, s in layout.node_slices.items()
            for position in range(s.start, s.stop)
        }
        losses = loss_without_each_node(masked, test, circuit_mask, params.batch_pairs, params.loss_reduction)
        sections["node_ablation"] = {
            "split": "test",
            "circuit": result.circuit_loss,
            "full_model": result.full_model_loss,
            "without_node": {names[position]: loss for position, loss in losses.items()},
        }
    rows = pretraining_rows(inputs.tokens, viewer.example_rows)[:, : model.config.n_ctx]
    interventions = mask_interventions(layout, circuit_mask, masked.ablation)
    pairs = test.select(range(min(viewer.task_pairs, test.n_pairs)))
    sections["activations"] = node_examples(model, rows, pairs, result.kept, interventions, inputs.tokenizer, viewer)
    return sections


def write_prune_outputs(ctx: WorkContext, inputs: PruneInputs, params: PruneConfig, result: TrialResult) -> None:
    """The artifact of one trial's circuit: circuit.json, circuit.html, result.json, loss_vs_k.png and ctx.metrics."""
    model, means, task_data = inputs.model, inputs.means, inputs.task_data
    layout = NodeLayout(model.config, tie_qk=params.tie_qk_masks)
    ablation = ablation_values(layout, means, params.ablation)
    ablated_to = layout.split(ablation)
    circuit = build_circuit(
        model,
        {name: torch.tensor(idx, dtype=torch.long) for name, idx in result.kept.items()},
        task_data.eval.candidates,
    )
    candidate_ids = torch.unique(task_data.eval.candidates).tolist()
    # The checkpoint by name ("pretrain/tiny"), not by the folder it was fetched to, which differs per store and
    # per run: artifacts hold only what they computed, so the same inputs give the same files (and keys) anywhere.
    checkpoint = ctx.cell.rpartition(":")[0] or str(inputs.checkpoint)
    circuit_data = circuit_to_json(
        circuit,
        ablation=ablated_to,
        task=result.task,
        cell=ctx.cell,
        checkpoint=checkpoint,
        model=model.config.model_dump(mode="json"),
        losses={
            "target": result.target_loss,
            "circuit": result.circuit_loss,
            "binarized": result.binarized_loss,
            "binarized_init": result.binarized_init_loss,
            "calibrated": result.calibrated_loss,
            "full_model": result.full_model_loss,
            "inverse": result.inverse_loss,
            "random_circuit": result.random_circuit_loss,
            "selection_val": result.selection_loss,
        },
        evaluation={
            "reported_split": "test",
            "test_pairs": result.test_pairs,
            "selection_split": "val",
            "mask_training_split": "train",
            "pairs": result.pairs,
            "loss_reduction": result.loss_reduction,
            "test_reached_target": result.test_reached_target,
        },
        reached_target=result.reached_target,
        calibration={"logit_scale": result.logit_scale, "logit_bias": result.logit_bias},
        hyperparameters=result.hyper,
        settings=params.model_dump(mode="json", exclude={"hyper", "tasks", "checkpoints"}),
        token_text={str(i): inputs.tokenizer.decode([i]) for i in candidate_ids},
        **viewer_sections(inputs, params, result, layout, ablation),
    )
    out = Path(ctx.out_dir)
    # Timings go to the manifest's metrics, not into the artifact (they differ on every run).
    computed = {name: value for name, value in result.to_json().items() if name != "timings"}
    model_info = checkpoint_summary(inputs.checkpoint, model)
    (out / RESULT_FILE).write_text(
        json.dumps({"cell": ctx.cell, "checkpoint": checkpoint, "model_info": model_info, **computed}, indent=1)
    )
    (out / CIRCUIT_FILE).write_text(json.dumps(circuit_data, indent=1))
    (out / CIRCUIT_PAGE).write_text(render_circuit_html(circuit_data))
    plot_loss_vs_size(result, out / CURVE_PLOT)
    ctx.metrics.update(
        {
            "nodes": result.nodes,
            "edges": result.edges,
            "edges_with_residual": result.edge_counts["edges_with_residual"],
            "total_nodes": result.total_nodes,
            "target_loss": result.target_loss,
            "loss_reduction": result.loss_reduction,
            "reached_target": result.reached_target,
            "selection_loss": result.selection_loss,
            "test_reached_target": result.test_reached_target,
            "test_pairs": result.test_pairs,
            "circuit_loss": result.circuit_loss,
            "binarized_loss": result.binarized_loss,
            "binarized_init_loss": result.binarized_init_loss,
            "calibrated_loss": result.calibrated_loss,
            "full_model_loss": result.full_model_loss,
            "inverse_loss": result.inverse_loss,
            "random_circuit_loss": result.random_circuit_loss,
            "seconds": result.timings["total_s"],
            "timings": result.timings,
            "cost": result.cost,
            "sweep": [{key: value for key, value in row.items() if key != "kept"} for row in result.sweep],
            "pretrain_val_loss": model_info["val_loss"],
        }
    )


def run_prune(ctx: WorkContext, params: PruneConfig, task: str) -> None:
    """Prune one checkpoint on one task with the fixed hyperparameters `params.hyper`."""
    torch.set_num_threads(ctx.num_threads)
    mean_cache = ctx.input("mean_cache") if params.ablation == "mean" else None
    inputs = load_prune_inputs(ctx.input("checkpoint"), mean_cache, ctx.input("tokens"), task, params, ctx.device)
    result = run_trial(
        inputs.model, inputs.means, inputs.task_data, params.hyper, params, params.seed, task=task, progress=ctx.report
    )
    add_binarization(inputs, params, result)
    ctx.report(
        {"completed": params.steps, "total": params.steps, "description": f"{result.nodes} nodes, {result.edges} edges"}
    )
    write_prune_outputs(ctx, inputs, params, result)
