"""Node masks over the one GPT forward: layout, Heaviside surrogate, masked interventions.

A node is one channel at one node location (`gpt.node_locations`). Pruning
gates every node: a kept node passes its activation, a deleted one is frozen
at its ablation value (its mean over the pretraining distribution, or zero):

    x  ->  x * m + ablation * (1 - m)        m in {0, 1}, per channel

applied as `GPT.forward` interventions at the node-location hooks, i.e. after
each location's AbsTopK, so the model code is never copied.

All masks live in ONE flat vector with a slice per location ("node space").
A stack of masks [M, n_nodes] runs M masked models in one forward (a "trial dimension"): the batch holds
M equal blocks of rows, block i under mask i (`mask_interventions`); pruning trains several trials' masks,
or evaluates several circuits, this way.
With `tie_qk` a layer's k channels share the mask entries of its q channels,
so the learned parameter vector ("mask space") is shorter than node space;
`NodeLayout.mask_index` maps every node to its mask entry.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .config import ModelConfig
from .gpt import node_locations


class NodeLayout:
    """Where each node location sits in the flat node vector and which mask entry gates each node."""

    def __init__(self, config: ModelConfig, tie_qk: bool = False):
        self.locations: list[tuple[str, int]] = node_locations(config)
        self.tie_qk = tie_qk
        self.node_slices: dict[str, slice] = {}
        self.mask_slices: dict[str, slice] = {}  # only the locations that own mask entries
        mask_index, node_offset, mask_offset = [], 0, 0
        for name, width in self.locations:
            self.node_slices[name] = slice(node_offset, node_offset + width)
            node_offset += width
            if tie_qk and name.endswith(".attn.k"):
                shared = self.mask_slices[name.removesuffix("k") + "q"]
                mask_index.append(torch.arange(shared.start, shared.stop))
                continue
            self.mask_slices[name] = slice(mask_offset, mask_offset + width)
            mask_index.append(torch.arange(mask_offset, mask_offset + width))
            mask_offset += width
        self.n_nodes = node_offset
        self.n_masks = mask_offset
        self.mask_index = torch.cat(mask_index)
        # Nodes gated by each mask entry: 2 for a tied q/k channel, else 1.
        self.multiplicity = torch.bincount(self.mask_index, minlength=self.n_masks).float()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.locations]

    def node_mask(self, mask: Tensor) -> Tensor:
        """Mask space [..., n_masks] -> node space [..., n_nodes] (differentiable)."""
        return mask if not self.tie_qk else mask[..., self.mask_index.to(mask.device)]

    def split(self, flat: Tensor) -> dict[str, Tensor]:
        """Node-space vector -> {hook name: [width] view}."""
        return {name: flat[s] for name, s in self.node_slices.items()}

    def flatten(self, per_location: dict[str, Tensor]) -> Tensor:
        """{hook name: [width]} -> node-space vector, in layout order."""
        missing = [name for name in self.names if name not in per_location]
        if missing:
            raise KeyError(f"no values for node locations {missing}")
        wrong = [
            (name, per_location[name].numel(), width)
            for name, width in self.locations
            if per_location[name].numel() != width
        ]
        if wrong:
            raise ValueError(f"wrong widths (location, got, expected): {wrong}")
        return torch.cat([per_location[name].reshape(-1) for name in self.names])


def kept_mask(layout: NodeLayout, kept: dict[str, list[int]]) -> Tensor:
    """The node-space mask [n_nodes] of a circuit given as kept channel indices per location."""
    mask = torch.zeros(layout.n_nodes)
    for name, idx in kept.items():
        mask[layout.node_slices[name].start + torch.tensor(idx, dtype=torch.long)] = 1.0
    return mask


def ablation_values(layout: NodeLayout, means: dict[str, Tensor] | None, ablation: str) -> Tensor:
    """What a deleted node is frozen at, in node space: its pretraining mean, or zero: [n_nodes]; or, for
    "resample", `means` holds activations [contexts, n_ctx, width] per location (`prune/resample.py`) and the
    values are [contexts, n_ctx, n_nodes]."""
    if ablation == "zero":
        return torch.zeros(layout.n_nodes)
    if ablation not in ("mean", "resample"):
        raise ValueError(f"ablation must be 'mean', 'zero' or 'resample', got {ablation!r}")
    if means is None:
        raise ValueError(f"{ablation} ablation needs its values per node location (the mean cache, or the patterns)")
    if ablation == "resample":
        return torch.cat([means[name].float().cpu() for name in layout.names], dim=-1)
    return layout.flatten({name: mean.float().cpu() for name, mean in means.items()})


def _gate(keep: Tensor, fill: Tensor) -> Callable[[Tensor], Tensor]:
    if keep.dim() == 1:

        def intervene(x: Tensor) -> Tensor:
            # A per-position fill [T_fill, width] serves any prompt of up to T_fill tokens.
            values = fill if fill.dim() == 1 else fill[: x.shape[-2]]
            return x * keep.to(x.dtype) + values.to(x.dtype)

        return intervene

    def intervene_stacked(x: Tensor) -> Tensor:  # keep, fill [M, width]; x [M * B, ..., width]
        blocks = x.reshape(keep.shape[0], -1, *x.shape[1:])
        shape = (keep.shape[0],) + (1,) * (blocks.dim() - 2) + (keep.shape[1],)
        return (blocks * keep.to(x.dtype).view(shape) + fill.to(x.dtype).view(shape)).reshape(x.shape)

    return intervene_stacked


def mask_interventions(
    layout: NodeLayout, node_mask: Tensor, ablation: Tensor
) -> dict[str, Callable[[Tensor], Tensor]]:
    """GPT interventions that apply `x * m + ablation * (1 - m)` at every node location.

    node_mask: [n_nodes] in {0, 1} (may carry a surrogate gradient), or a stack [M, n_nodes] gating M equal
    blocks of the batch's rows, block i by mask i; ablation: [n_nodes], or [T, n_nodes] per position (resample
    ablation: a batch of T-token prompts; one mask at a time).
    A kept node's activation passes bit-exactly: x * 1 + 0 == x.
    """
    if node_mask.dim() == 2 and ablation.dim() == 2:
        raise ValueError("resample ablation gates one mask at a time: set prune.trials_per_task to 1")
    fill = ablation * (1 - node_mask)
    return {name: _gate(node_mask[..., s], fill[..., s]) for name, s in layout.node_slices.items()}


class HeavisideSurrogate(torch.autograd.Function):
    """Forward: 1 where tau > 0 else 0. Backward: the sigmoid's derivative at tau / temperature.

    The sigmoid-derivative straight-through estimator of the paper's §2.2 / Appendix A.5.
    """

    @staticmethod
    def forward(ctx, tau: Tensor, temperature: float) -> Tensor:
        ctx.save_for_backward(tau)
        ctx.temperature = temperature
        return (tau > 0).to(tau.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (tau,) = ctx.saved_tensors
        s = torch.sigmoid(tau / ctx.temperature)
        return grad * s * (1 - s) / ctx.temperature, None


def heaviside(tau: Tensor, temperature: float) -> Tensor:
    return HeavisideSurrogate.apply(tau, temperature)
