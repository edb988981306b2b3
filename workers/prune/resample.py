"""Resample ablation: a deleted node takes its activation on another pretraining context, one context per batch.

Full mean or zero ablation freezes a deleted node at one value, and critics of the method point out that masks can
then find node sets whose ablated values cancel. Resampling instead gives the deleted nodes the activations the
unmasked model has on a real pretraining context (the first `resample_contexts` rows of the tokenized corpus's val
split): one context's activation pattern per batch, position by position, for every deleted node of every prompt
of the batch. The context is chosen by a hash of the batch's tokens, so the same batch always sees the same
pattern: bisection compares circuit sizes on equal footing, and reruns reproduce.
"""

from __future__ import annotations

import zlib

import torch
from torch import Tensor

from ..nn.gpt import GPT, node_locations


@torch.no_grad()
def resample_values(model: GPT, rows: Tensor) -> dict[str, Tensor]:
    """{node location: [contexts, n_ctx, width]} the unmasked model's activations on each row of `rows`
    [contexts, n_ctx]; `nn.masks.ablation_values(..., "resample")` concatenates them into node space."""
    if rows.shape[0] == 0:
        raise ValueError("resample ablation needs at least one pretraining context; the val split is empty")
    device = next(model.parameters()).device
    names = [name for name, _ in node_locations(model.config)]
    _, recorded = model(rows.to(device), record=names)
    return {name: recorded[name].float().cpu() for name in names}


def pattern_index(tokens: Tensor, contexts: int) -> int:
    """Which context a batch of prompts [B, T] draws its pattern from: a hash of its tokens."""
    return zlib.crc32(tokens.detach().cpu().contiguous().numpy().tobytes()) % contexts


def pattern_for(patterns: Tensor, tokens: Tensor) -> Tensor:
    """The [T, n_nodes] ablation values of one batch of prompts [B, T] (positions past a context's end: none)."""
    width = tokens.shape[-1]
    if width > patterns.shape[1]:
        raise ValueError(f"prompts of {width} tokens are longer than the {patterns.shape[1]}-token contexts")
    return patterns[pattern_index(tokens, patterns.shape[0]), :width]
