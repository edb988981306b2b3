"""Binarizing a circuit's nodes (paper Appendix C, Fig. 34): is a node's magnitude needed, or only on/off?

Every kept node gets a two-level activation function from the family

    psi_{t,l,r}(x) = m + t * (x - m) + (1 - t) * (r - l) * g_t(u),   u = (x - m) / (r - l),  m = (l + r) / 2

where g_t is a sigmoid of temperature t, shifted and rescaled so that g_t(-1/2) = -1/2 and g_t(1/2) = 1/2.
So psi_t(l) = l and psi_t(r) = r for every t, psi_1 is the identity, and psi_0 is the step function

    psi_0(x) = l if x < (l + r) / 2 else r.

The family depends only on the set {l, r} (the lower level is always taken below the middle), so training
may move l past r.

Fitting, on train pairs only, in two phases:

1. Initialisation (`fit_steps`): with the circuit in place, record each kept node's activations (every real,
   unpadded position); for each node in forward order try thresholds 1/4, 1/2 and 3/4 of the way from the
   min to the max activation, set l and r to the mean of the activations below and above it, and keep the
   choice with the lowest task loss, the nodes before it already binarized.
2. Refinement (`refine_steps`): train every node's l and r together with AdamW on the task loss with every
   kept node on psi_t, t annealed as (1 - progress)^5 (`temperature_at`) from 1 (the identity) towards 0.

`fit_binarization` runs both and keeps the refined levels unless their psi_0 loss on held-out pairs (the task's
validation pairs, which select everything in pruning) is higher than the initialisation's: 2 levels per node
trained on a few dozen pairs can overfit them. Reported losses always use psi_0, the exact step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

THRESHOLD_FRACTIONS = (0.25, 0.5, 0.75)


def psi(x: Tensor, t: float, low: Tensor, high: Tensor) -> Tensor:
    """The App. C family: identity at t = 1, the step between `low` and `high` at t = 0; psi_t(low) = low and
    psi_t(high) = high for every t. `low`/`high` broadcast against x (one pair per channel), in either order."""
    lower, upper = torch.minimum(low, high), torch.maximum(low, high)
    middle = (lower + upper) / 2
    if t <= 0:
        return torch.where(x < middle, lower, upper)
    # A floor well above 0 keeps u, and the gradients through it, finite when the levels (nearly) meet.
    span = (upper - lower).clamp_min(torch.finfo(x.dtype).eps)
    u = (x - middle) / span
    edge = torch.sigmoid(torch.tensor(0.5 / t, dtype=x.dtype))
    g = (torch.sigmoid(u / t) - (1 - edge)) / (2 * edge - 1) - 0.5
    return middle + t * (x - middle) + (1 - t) * span * g


@dataclass
class StepFunctions:
    """One step function per binarized node: node-space indices [n] and their levels l, r [n], applied as
    psi_t at `temperature` t (0: the exact step).

    Levels may also be a stack [V, n]: V variants of the same nodes, variant i applied to block i of V equal
    blocks of the batch's rows (as a stack of node masks is, `nn.masks.mask_interventions`), so that
    `fit_steps` tries a node's candidate thresholds in one forward."""

    nodes: Tensor
    low: Tensor
    high: Tensor
    temperature: float = 0.0

    @property
    def variants(self) -> int | None:
        """V for a stack of levels [V, n]; None for one set [n]."""
        return int(self.low.shape[0]) if self.low.dim() == 2 else None

    def variant(self, i: int) -> StepFunctions:
        """Variant i of a stack, as one set of levels."""
        return StepFunctions(self.nodes, self.low[i], self.high[i], self.temperature)

    def intervention(
        self, inner: Callable[[Tensor], Tensor] | None, node_slice: slice
    ) -> Callable[[Tensor], Tensor] | None:
        """`inner` (the mask gate of one location), then psi_t at the binarized channels of that location."""
        chosen = (self.nodes >= node_slice.start) & (self.nodes < node_slice.stop)
        if not bool(chosen.any()):
            return inner
        channels = self.nodes[chosen] - node_slice.start
        low, high, t = self.low[..., chosen], self.high[..., chosen], self.temperature

        def intervene(x: Tensor) -> Tensor:
            x = inner(x) if inner is not None else x
            out = x.clone()
            idx = channels.to(x.device)
            lower, upper = low.to(x.device, x.dtype), high.to(x.device, x.dtype)
            picked = x[..., idx]
            if lower.dim() == 1:
                out[..., idx] = psi(picked, t, lower, upper)
                return out
            blocks = picked.reshape(lower.shape[0], -1, *picked.shape[1:])  # [V, B, ..., channels]
            shape = (lower.shape[0],) + (1,) * (blocks.dim() - 2) + (lower.shape[1],)
            out[..., idx] = psi(blocks, t, lower.view(shape), upper.view(shape)).reshape(picked.shape)
            return out

        return intervene


def levels(values: Tensor, fraction: float) -> tuple[float, float]:
    """(l, r): the means of `values` below and at-or-above the threshold `fraction` of the way from min to max."""
    lo, hi = float(values.min()), float(values.max())
    threshold = lo + fraction * (hi - lo)
    below, above = values[values < threshold], values[values >= threshold]
    low = float(below.mean()) if below.numel() else lo
    high = float(above.mean()) if above.numel() else hi
    return low, high


def fit_steps(
    activations: Tensor, nodes: Tensor, losses_with: Callable[[StepFunctions], Sequence[float]]
) -> tuple[StepFunctions, list[dict[str, float]]]:
    """Greedy per-node choice of the threshold (App. C initialisation).

    activations: [positions, n] the kept nodes' recorded activations (train pairs); nodes: their node-space
    indices [n], in forward order. `losses_with(steps)` is the task loss on the fitting pairs under each variant
    of the stack `steps` (levels [V, n]): a node's candidate thresholds are tried together, the nodes before it
    already binarized. Returns the step functions and, per node, the chosen fraction, l, r and the loss after it.
    """
    low = torch.zeros(nodes.numel())
    high = torch.zeros(nodes.numel())
    log = []
    for i in range(nodes.numel()):
        candidates = [levels(activations[:, i], fraction) for fraction in THRESHOLD_FRACTIONS]
        lows, highs = low[: i + 1].repeat(len(candidates), 1), high[: i + 1].repeat(len(candidates), 1)
        lows[:, i] = torch.tensor([level_low for level_low, _ in candidates])
        highs[:, i] = torch.tensor([level_high for _, level_high in candidates])
        losses = [float(loss) for loss in losses_with(StepFunctions(nodes[: i + 1], lows, highs))]
        best = min(range(len(candidates)), key=losses.__getitem__)  # the first of equal losses
        low[i], high[i] = lows[best, i], highs[best, i]
        log.append(
            {
                "node": int(nodes[i]),
                "fraction": THRESHOLD_FRACTIONS[best],
                "low": candidates[best][0],
                "high": candidates[best][1],
                "loss": losses[best],
            }
        )
    return StepFunctions(nodes, low, high), log


def temperature_at(step: int, steps: int) -> float:
    """App. C's schedule t = (1 - progress)^5 at `step` of `steps`: 1 (the identity) at step 0, then towards 0."""
    return (1 - step / steps) ** 5


def refine_steps(
    init: StepFunctions, train_loss_with: Callable[[StepFunctions], Tensor], steps: int, lr: float
) -> StepFunctions:
    """Train every node's levels from `init` with AdamW (no weight decay: nothing pulls a level towards 0),
    the nodes on psi_t with t annealed by `temperature_at` (App. C refinement).

    `train_loss_with(steps)` is the differentiable task loss on the fitting pairs with `steps` in place.
    Returns the levels reached, each node's lower level as `low`, applied as the exact step (t = 0).
    An empty circuit has no levels to train, and a loss that no level reaches (it does not depend on the kept
    nodes) gives them no gradient: both keep `init` (a degenerate circuit is a result, not an error).
    """
    if init.nodes.numel() == 0:
        return init
    low, high = init.low.clone().requires_grad_(True), init.high.clone().requires_grad_(True)
    optimizer = torch.optim.AdamW([low, high], lr=lr, weight_decay=0.0)
    for step in range(steps):
        loss = train_loss_with(StepFunctions(init.nodes, low, high, temperature_at(step, steps)))
        if not loss.requires_grad:
            return init
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    low, high = low.detach(), high.detach()
    return StepFunctions(init.nodes, torch.minimum(low, high), torch.maximum(low, high))


@dataclass
class Binarization:
    """The initialisation's step functions and the ones kept, with their psi_0 task losses on the fitting pairs."""

    init: StepFunctions
    final: StepFunctions
    init_loss: float
    final_loss: float


def fit_binarization(
    activations: Tensor,
    nodes: Tensor,
    losses_with: Callable[[StepFunctions], Sequence[float]],
    train_loss_with: Callable[[StepFunctions], Tensor],
    steps: int,
    lr: float,
    selection_loss_with: Callable[[StepFunctions], float],
) -> Binarization:
    """App. C on the fitting pairs: `fit_steps`, then `refine_steps` (arguments as there). The refined levels are
    kept unless their psi_0 loss on the selection pairs (`selection_loss_with`: validation pairs, never the
    fitting ones) is higher than the initialisation's. The losses recorded are the fitting pairs'."""

    def fit_loss(one: StepFunctions) -> float:
        return float(losses_with(StepFunctions(one.nodes, one.low[None], one.high[None]))[0])

    init, log = fit_steps(activations, nodes, losses_with)
    init_loss = log[-1]["loss"] if log else fit_loss(init)
    refined = refine_steps(init, train_loss_with, steps, lr)
    if selection_loss_with(refined) <= selection_loss_with(init):
        return Binarization(init, refined, init_loss, fit_loss(refined))
    return Binarization(init, init, init_loss, init_loss)
