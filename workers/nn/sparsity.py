"""Weight sparsity: the L0 schedule, the learning-rate schedule and per-step weight top-k.

Paper §2.1 and Appendix A.2: after every AdamW step, each weight matrix keeps
only its largest-magnitude entries, so that every matrix has the same nonzero
fraction; the fraction (L0) is annealed from dense to the target over the first
half of training; no neuron or attention channel keeps fewer than j = 4 nonzero
weights; the learning rate is warmup-then-linear-decay times 1/sqrt(L0) (the
"sharkfin").

The lr convention (`OptimConfig.lr`): the configured lr is the base lr, the peak at L0 = 1; the
applied lr is base / sqrt(L0(t)), so at the target L0 it is base / sqrt(target_l0), 8x the base at
1/64 and 22.6x at 1/512. The reference's train.py scales by sqrt(target / L0) instead, which is the
same schedule with base = (its lr) x sqrt(target): a reference lr X is base lr X * sqrt(target_l0)
here (the paper preset's variants are set that way). The paper sweeps lr for every run (A.2): a
sweep is a list of variants that differ only in `lr`; the report keeps the best val loss of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...kernels import row_topk_mask, weight_topk_mask
from .config import OptimConfig, SparsityConfig
from .gpt import GPT


def keep_count(numel: int, fraction: float) -> int:
    """Entries a tensor of `numel` keeps at nonzero `fraction` (at least one)."""
    return min(numel, max(1, round(fraction * numel)))


@dataclass(frozen=True)
class L0Schedule:
    """Nonzero fraction of each parameter kind after `step` completed optimizer steps."""

    sparsity: SparsityConfig
    total_steps: int

    @property
    def targets(self) -> dict[str, float]:
        s = self.sparsity
        # The paper sparsifies all weights and biases, embeddings included (§2.1); the reference's
        # train.py gives embeddings and biases 4x the matrices' fraction (1/16 vs 1/64).
        embed = s.embed_l0 if s.embed_l0 is not None else min(1.0, 4 * s.target_l0)
        bias = s.bias_l0 if s.bias_l0 is not None else embed
        return {"matrix": s.target_l0, "embed": embed, "bias": bias}

    def progress(self, step: int) -> float:
        s = self.sparsity
        done = step / self.total_steps
        return min(1.0, max(0.0, (done - s.anneal_start_frac) / (s.anneal_end_frac - s.anneal_start_frac)))

    def fractions(self, step: int) -> dict[str, float]:
        p = self.progress(step)
        if self.sparsity.anneal == "linear":
            return {kind: 1.0 + (target - 1.0) * p for kind, target in self.targets.items()}
        return {kind: target**p for kind, target in self.targets.items()}

    def weight_l0(self, step: int) -> float:
        return self.fractions(step)["matrix"]


def warmup_decay_lr(peak: float, step: int, total_steps: int, warmup_steps: int) -> float:
    """The one lr schedule (training and pruning): linear warmup over `warmup_steps`, then linear decay to 0.

    `step` completed steps; the value is the lr of the optimizer step that follows.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def learning_rate(step: int, total_steps: int, optim: OptimConfig, weight_l0: float = 1.0) -> float:
    """lr of the optimizer step that follows `step` completed steps: linear warmup, linear decay to 0,
    times 1/sqrt(current weight L0) when `optim.lr_l0_scaling`."""
    scale = 1 / math.sqrt(weight_l0) if optim.lr_l0_scaling else 1.0
    return warmup_decay_lr(optim.lr, step, total_steps, int(optim.warmup_frac * total_steps)) * scale


@dataclass
class SparseParam:
    name: str
    param: nn.Parameter
    kind: str
    neuron_dim: int | None


class WeightSparsifier:
    """Keeps exactly `keep_count(numel, fraction)` entries of every sparsified parameter.

    Matrices protect their j = min_alive_per_neuron largest entries along the neuron
    axis (see `ParamRole`) inside the budget; embeddings and biases have no such rule.
    Gradients and optimizer moments are left dense.
    """

    def __init__(self, model: GPT, schedule: L0Schedule):
        self.schedule = schedule
        self.min_alive = schedule.sparsity.min_alive_per_neuron
        params = dict(model.named_parameters())
        self.params = [
            SparseParam(name, params[name], role.kind, role.neuron_dim)
            for name, role in model.parameter_roles().items()
            if role.kind != "dense"
        ]
        for p in self.params:
            if p.kind == "matrix":
                self._check_budget(p, schedule.targets["matrix"])

    def _protected_count(self, p: SparseParam) -> int:
        shape = p.param.shape
        neurons, fan = shape[p.neuron_dim], shape[1 - p.neuron_dim]
        return neurons * min(self.min_alive, fan)

    def _check_budget(self, p: SparseParam, fraction: float) -> None:
        budget, protected = keep_count(p.param.numel(), fraction), self._protected_count(p)
        if protected > budget:
            raise ValueError(
                f"{p.name} {tuple(p.param.shape)} keeps {budget} weights at L0 {fraction:g}, fewer than the "
                f"{protected} that min_alive_per_neuron={self.min_alive} protects: lower sparsity.min_alive_per_neuron "
                f"or raise sparsity.target_l0"
            )

    @torch.no_grad()
    def apply(self, step: int) -> dict[str, float]:
        """Zero all but the scheduled top-|w| entries after `step` completed steps; returns the fractions."""
        fractions = self.schedule.fractions(step)
        for p in self.params:
            fraction = fractions[p.kind]
            if fraction >= 1.0:
                continue
            w = p.param
            protected = None
            if p.kind == "matrix" and self.min_alive > 0:
                scores = w.abs() if p.neuron_dim == 0 else w.abs().T
                protected = row_topk_mask(scores, min(self.min_alive, scores.shape[1]))
                protected = protected if p.neuron_dim == 0 else protected.T
            w.mul_(weight_topk_mask(w, keep_count(w.numel(), fraction), protected))
        return fractions


def nonzero_fractions(model: nn.Module) -> dict[str, float]:
    """Nonzero fraction of every parameter tensor, by name."""
    return {name: torch.count_nonzero(p).item() / p.numel() for name, p in model.named_parameters()}
