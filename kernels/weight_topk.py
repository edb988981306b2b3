"""Per-matrix weight top-k (paper §2.1): after every optimizer step each weight
matrix keeps only its k largest-magnitude entries.

Exactly k entries are kept, chosen over the whole matrix by order keys
(keys.py): larger |w| first, ties to the lower row-major flat index. Entries
marked `protected` (the min-alive rule, see row_topk.py) are kept
unconditionally and count toward k.
"""

import torch

from . import reference
from .checks import check_count
from .dispatch import use_triton


def _n_by_magnitude(w: torch.Tensor, k, protected: torch.Tensor | None) -> int:
    """How many unprotected entries to keep by magnitude, after checking the arguments."""
    k = check_count("weight_topk_mask", "k", k, 0, w.numel(), f"w has {w.numel()} entries")
    if protected is not None:
        if protected.dtype != torch.bool or protected.shape != w.shape:
            raise ValueError(
                f"weight_topk_mask: protected must be a bool mask of w's shape {tuple(w.shape)}, "
                f"got {protected.dtype} {tuple(protected.shape)}"
            )
        if protected.device != w.device:
            raise ValueError(f"weight_topk_mask: protected is on {protected.device}, w on {w.device}")
        n_protected = int(protected.sum())
        if n_protected > k:
            raise ValueError(
                f"weight_topk_mask: {n_protected} protected entries exceed k={k}; raise k or protect fewer entries"
            )
        return k - n_protected
    return k


def weight_topk_mask_reference(w: torch.Tensor, k: int, protected: torch.Tensor | None = None) -> torch.Tensor:
    """weight_topk_mask on the reference path (numba on the CPU, torch elsewhere)."""
    return reference.select_whole(w, _n_by_magnitude(w, k, protected), protected)


def weight_topk_mask_triton(w: torch.Tensor, k: int, protected: torch.Tensor | None = None) -> torch.Tensor:
    """weight_topk_mask with the multi-block Triton threshold search."""
    from . import triton_whole

    return triton_whole.select_whole(w, _n_by_magnitude(w, k, protected), protected)


def weight_topk_mask(w: torch.Tensor, k: int, protected: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask (w's shape) of exactly k kept entries: the largest |w|, protected first.

    0 <= k <= w.numel(). protected: optional bool mask of w's shape whose entries
    are always kept and count toward k; more than k of them is a ValueError.
    Ties in |w| go to the lower row-major flat index. Deterministic.
    """
    if use_triton(w, "triton_whole"):
        return weight_topk_mask_triton(w, k, protected)
    return weight_topk_mask_reference(w, k, protected)
