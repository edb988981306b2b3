"""Per-row top-j masks of scores (the min-alive rule of the weight top-k).

The paper keeps at least a few nonzero weights per neuron; the caller scores
the entries of a matrix, asks for the j largest of each row (or of each column,
by transposing), and protects them in weight_topk_mask.
"""

import torch

from . import reference
from .checks import check_count
from .dispatch import use_triton


def _mask(scores: torch.Tensor, j, select_rows) -> torch.Tensor:
    """Check j, then select_rows(scores, j) -> keep mask (j = 0 needs no selection)."""
    n_cols = scores.shape[-1] if scores.dim() else 0
    j = check_count("row_topk_mask", "j", j, 0, n_cols, f"scores.shape[-1] = {n_cols}")
    if j == 0:
        return torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    return select_rows(scores, j)


def _reference_select(scores, j):
    return reference.select_rows(scores, j, absolute=False, want_values=False, want_keep=True)[1]


def _triton_select(scores, j):
    from . import triton_rows

    return triton_rows.select_rows(scores, j, absolute=False, want_values=False)[1]


def row_topk_mask_reference(scores: torch.Tensor, j: int) -> torch.Tensor:
    """row_topk_mask on the reference path (numba on the CPU, torch elsewhere)."""
    return _mask(scores, j, _reference_select)


def row_topk_mask_triton(scores: torch.Tensor, j: int) -> torch.Tensor:
    """row_topk_mask with the Triton row kernel."""
    return _mask(scores, j, _triton_select)


def row_topk_mask(scores: torch.Tensor, j: int) -> torch.Tensor:
    """Bool mask keeping the j largest scores (signed, not |scores|) of every last-dim row.

    0 <= j <= scores.shape[-1]; exactly j per row; among equal scores the lower
    index wins. For the column axis pass the transpose (and transpose back).
    """
    if use_triton(scores, "triton_rows"):
        return row_topk_mask_triton(scores, j)
    return row_topk_mask_reference(scores, j)
