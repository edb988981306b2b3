"""Mask training, ranking, bisection and calibration: the search steps of one trial (paper §2.2, App. A.5).

1. Train masks. One parameter tau per node (per q/k channel pair when tied), initialised
   N(init_noise_bias, init_noise_scale) and clamped to [-1, 1] after every step. The forward keeps a node iff
   tau > 0 (deleted nodes are mean- or zero-ablated, `nn.masks`); the backward uses the sigmoid derivative at
   tau / heaviside_temp. Loss = two-way task loss + k_coef x (number of kept nodes). AdamW on tau only, global
   gradient RMS clipped to `grad_clip`, lr warmed up linearly over lr_warmup_frac then decayed linearly to 0.
   Each step draws batch_pairs pairs from the train pool.
2. Discretize. Rank mask entries by tau; bisect for the smallest k whose top-k circuit reaches target_loss on the
   fixed eval set (val split).
3. Calibrate the circuit's logits: scale and shift of the candidate logit gap, LBFGS on a sample of the train pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ...tasks import TaskBatch
from ..nn.circuit import build_circuit, kept_indices
from ..nn.gpt import GPT
from ..nn.masks import NodeLayout, heaviside
from ..nn.sparsity import warmup_decay_lr
from .config import PruneConfig, PruneHyperparams
from .losses import concat_pairs, two_way_loss
from .masked import MaskedModel

ProgressFn = Callable[[dict[str, Any]], None]


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
    """Learned tau [n_masks] and a short history of (step, task_loss, nodes, lr): one trial's masks."""
    return train_masks_together([masked], train, [hyper], settings, [generator], progress)[0]


def train_masks_together(
    runs: list[MaskedModel],
    train: TaskBatch,
    hypers: list[PruneHyperparams],
    settings: PruneConfig,
    generators: list[torch.Generator],
    progress: ProgressFn | None = None,
) -> list[tuple[Tensor, list[dict[str, float]]]]:
    """Learned tau [n_masks] and a short history of (step, task_loss, nodes, lr), one per trial.

    Trial i has its own hyperparameters hypers[i], random stream generators[i] (its init and its batches), AdamW
    state and gradient clipping, and counts its own work in runs[i].work; all run on the model of runs[0]. With
    several trials, every step is ONE forward and backward of their batches stacked on a trial dimension (block i
    of the rows under trial i's mask, `nn.masks`): the same arithmetic as training each alone (trial i's loss
    reaches only its own tau), in fewer, larger model calls."""
    masked = runs[0]
    layout, device = masked.layout, masked.device
    count = len(runs)
    taus = [init_tau(layout.n_masks, h, g).to(device).requires_grad_(True) for h, g in zip(hypers, generators)]
    optimizers = [
        torch.optim.AdamW([tau], lr=h.lr, betas=(0.9, 1.0 - h.inv_beta2), weight_decay=h.wd)
        for tau, h in zip(taus, hypers)
    ]
    multiplicity = layout.multiplicity.to(device)
    max_norm = settings.grad_clip * math.sqrt(layout.n_masks)  # RMS limit as a norm limit
    log_every = max(1, settings.steps // 100)
    histories: list[list[dict[str, float]]] = [[] for _ in runs]
    for step in range(settings.steps):
        lrs = [lr_at(step, settings.steps, h.lr, h.lr_warmup_frac) for h in hypers]
        for optimizer, lr in zip(optimizers, lrs):
            for group in optimizer.param_groups:
                group["lr"] = lr
        batches = [train.select(_draw_pairs(train.n_pairs, settings.batch_pairs, g)) for g in generators]
        gates = [heaviside(tau, h.heaviside_temp) for tau, h in zip(taus, hypers)]
        if count == 1:
            gaps = [masked.forward_gap(batches[0], layout.node_mask(gates[0]))]
        else:
            stacked = masked.forward_gap(concat_pairs(batches), layout.node_mask(torch.stack(gates)))
            gaps = list(stacked.view(count, -1).unbind(0))
        task_losses = [two_way_loss(gap, batch.correct) for gap, batch in zip(gaps, batches)]  # the mean always
        nodes = [(gate * multiplicity).sum() for gate in gates]
        loss = sum(t + h.k_coef * n for t, h, n in zip(task_losses, hypers, nodes))
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for run, batch, tau, optimizer in zip(runs, batches, taus, optimizers):
            run.work.add(batch)
            run.work.backward_tokens += int(batch.tokens.numel())
            torch.nn.utils.clip_grad_norm_([tau], max_norm)
            optimizer.step()
            with torch.no_grad():
                tau.clamp_(-1.0, 1.0)
        if step % log_every == 0 or step == settings.steps - 1:
            for history, task_loss, n, lr in zip(histories, task_losses, nodes, lrs):
                history.append(
                    {"step": step, "task_loss": float(task_loss.detach()), "nodes": float(n.detach()), "lr": lr}
                )
            if progress is not None:
                best = min(histories, key=lambda h: h[-1]["task_loss"])[-1]
                trials = f" ({count} trials, best)" if count > 1 else ""
                progress(
                    {
                        "completed": step + 1,
                        "total": settings.steps,
                        "description": f"masks{trials}: loss {best['task_loss']:.3f}, {int(best['nodes'])} nodes",
                    }
                )
    return [(tau.detach(), history) for tau, history in zip(taus, histories)]


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


def _recording(loss_at: Callable[[int], float], probes: list[tuple[int, float]]) -> Callable[[int], float]:
    """loss_at, appending every (k, loss) it evaluates to `probes`."""

    def probe(k: int) -> float:
        loss = loss_at(k)
        probes.append((k, loss))
        return loss

    return probe


def smallest_sufficient_k(loss_at: Callable[[int], float], k_max: int, target: float) -> Bisection:
    """The smallest k in [0, k_max] with loss_at(k) <= target, for a loss that falls with k.

    When even k_max misses the target, returns k_max with reached_target False.
    """
    probes: list[tuple[int, float]] = []
    probe = _recording(loss_at, probes)

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


def coarse_to_fine_k(
    loss_at: Callable[[int], float], coarse_loss_at: Callable[[int], float], k_max: int, target: float
) -> Bisection:
    """`smallest_sufficient_k` that spends few evaluations of the full `loss_at`: bisect on `coarse_loss_at` (the
    loss on a few of the pairs, a cheap estimate) to bracket k, then find the smallest k with loss_at(k) <= target
    near that guess with loss_at alone: confirm the guess and the k below it, galloping outwards (1, 2, 4, ...)
    when the estimate was off, then bisecting the bracket. For a loss that falls with k the answer is exactly
    `smallest_sufficient_k(loss_at, ...)`'s; `probes` hold only loss_at's evaluations."""
    probes: list[tuple[int, float]] = []
    probe = _recording(loss_at, probes)

    if not probe(k_max) <= target:
        return Bisection(k_max, False, probes)
    guess = smallest_sufficient_k(coarse_loss_at, k_max, target).k  # k_max when the estimate never reaches it
    # Invariant once found: loss_at(high) <= target and loss_at(low - 1) > target (low = 0: nothing below).
    if guess < k_max and probe(guess) <= target:
        high, step = guess, 1
        while True:  # gallop down to a k that misses the target (or to 0)
            below = max(0, high - step)
            if below == high or not probe(below) <= target:
                low = below + 1 if below < high else 0
                break
            high, step = below, 2 * step
    else:
        low, step = (guess + 1) if guess < k_max else 0, 1
        high = k_max
        if guess < k_max:
            while low + step - 1 < k_max:  # gallop up to a k that reaches it (k_max does)
                above = low + step - 1
                if probe(above) <= target:
                    high = above
                    break
                low, step = above + 1, 2 * step
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
