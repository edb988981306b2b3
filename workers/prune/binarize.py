"""Binarizing a circuit's nodes (paper Appendix C, Fig. 34): is a node's magnitude needed, or only on/off?

Every kept node gets a two-level activation function from the family

    psi_{t,l,r}(x) = m + (r - l) * (t * u + (1 - t) * g_t(u)),   u = (x - m) / (r - l),  m = (l + r) / 2

where g_t is a sigmoid of temperature t, shifted and rescaled so that g_t(-1/2) = -1/2 and g_t(1/2) = 1/2.
So psi_t(l) = l and psi_t(r) = r for every t, psi_1 is the identity, and psi_0 is the step function

    psi_0(x) = l if x < (l + r) / 2 else r.

Fitting (`fit_steps`) follows the paper's initialisation, on train pairs only: with the circuit in place,
record each kept node's activations (every real, unpadded position); for each node in forward order try
thresholds 1/4, 1/2 and 3/4 of the way from the min to the max activation, set l and r to the mean of the
activations below and above it, and keep the choice with the lowest task loss, the nodes before it already
binarized. The paper then anneals t as (1 - progress)^5 while training l and r; that refinement is not run
here, so the reported `binarized_loss` (psi_0 at every kept node, test pairs) is an upper bound of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

THRESHOLD_FRACTIONS = (0.25, 0.5, 0.75)


def psi(x: Tensor, t: float, low: Tensor, high: Tensor) -> Tensor:
    """The App. C family: identity at t = 1, the step between `low` and `high` at t = 0; psi_t(low) = low and
    psi_t(high) = high for every t. `low`/`high` broadcast against x (one pair per channel)."""
    middle = (low + high) / 2
    if t <= 0:
        return torch.where(x < middle, low, high)
    span = (high - low).clamp_min(torch.finfo(x.dtype).tiny)
    u = (x - middle) / span
    edge = torch.sigmoid(torch.tensor(0.5 / t, dtype=x.dtype))
    g = (torch.sigmoid(u / t) - (1 - edge)) / (2 * edge - 1) - 0.5
    return middle + span * (t * u + (1 - t) * g)


@dataclass
class StepFunctions:
    """One step function per binarized node: node-space indices [n] and their levels l, r [n]."""

    nodes: Tensor
    low: Tensor
    high: Tensor

    def intervention(
        self, inner: Callable[[Tensor], Tensor] | None, node_slice: slice, t: float = 0.0
    ) -> Callable[[Tensor], Tensor] | None:
        """`inner` (the mask gate of one location), then psi_t at the binarized channels of that location."""
        chosen = (self.nodes >= node_slice.start) & (self.nodes < node_slice.stop)
        if not bool(chosen.any()):
            return inner
        channels = self.nodes[chosen] - node_slice.start
        low, high = self.low[chosen], self.high[chosen]

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
