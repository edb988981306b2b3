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
from .losses import two_way_loss
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
