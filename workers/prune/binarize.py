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
from typing import Callable

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
    psi_t at `temperature` t (0: the exact step)."""

    nodes: Tensor
    low: Tensor
    high: Tensor
    temperature: float = 0.0

    def intervention(
        self, inner: Callable[[Tensor], Tensor] | None, node_slice: slice
    ) -> Callable[[Tensor], Tensor] | None:
        """`inner` (the mask gate of one location), then psi_t at the binarized channels of that location."""
        chosen = (self.nodes >= node_slice.start) & (self.nodes < node_slice.stop)
        if not bool(chosen.any()):
            return inner
        channels = self.nodes[chosen] - node_slice.start
        low, high, t = self.low[chosen], self.high[chosen], self.temperature

        def intervene(x: Tensor) -> Tensor:
            x = inner(x) if inner is not None else x
            out = x.clone()
            idx = channels.to(x.device)
            out[..., idx] = psi(x[..., idx], t, low.to(x.device, x.dtype), high.to(x.device, x.dtype))
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
    activations: Tensor, nodes: Tensor, loss_with: Callable[[StepFunctions], float]
) -> tuple[StepFunctions, list[dict[str, float]]]:
    """Greedy per-node choice of the threshold (App. C initialisation).

    activations: [positions, n] the kept nodes' recorded activations (train pairs); nodes: their node-space
    indices [n], in forward order. `loss_with(steps)` is the task loss on the fitting pairs with `steps` in
    place. Returns the step functions and, per node, the chosen fraction, l, r and the loss after it.
    """
    low = torch.zeros(nodes.numel())
    high = torch.zeros(nodes.numel())
    log = []
    for i in range(nodes.numel()):
        best: tuple[float, float, float, float] | None = None
        for fraction in THRESHOLD_FRACTIONS:
            level_low, level_high = levels(activations[:, i], fraction)
            low[i], high[i] = level_low, level_high
            loss = loss_with(StepFunctions(nodes[: i + 1], low[: i + 1], high[: i + 1]))
            if best is None or loss < best[0]:
                best = (loss, fraction, level_low, level_high)
        assert best is not None
        low[i], high[i] = best[2], best[3]
        log.append({"node": int(nodes[i]), "fraction": best[1], "low": best[2], "high": best[3], "loss": best[0]})
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
    loss_with: Callable[[StepFunctions], float],
    train_loss_with: Callable[[StepFunctions], Tensor],
    steps: int,
    lr: float,
    selection_loss_with: Callable[[StepFunctions], float],
) -> Binarization:
    """App. C on the fitting pairs: `fit_steps`, then `refine_steps` (arguments as there). The refined levels are
    kept unless their psi_0 loss on the selection pairs (`selection_loss_with`: validation pairs, never the
    fitting ones) is higher than the initialisation's. The losses recorded are the fitting pairs'."""
    init, log = fit_steps(activations, nodes, loss_with)
    init_loss = log[-1]["loss"] if log else loss_with(init)
    refined = refine_steps(init, train_loss_with, steps, lr)
    if selection_loss_with(refined) <= selection_loss_with(init):
        return Binarization(init, refined, init_loss, loss_with(refined))
    return Binarization(init, init, init_loss, init_loss)
