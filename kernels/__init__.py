"""Numerics of weight-sparse training: AbsTopK and the weight top-k.

Each op has a dispatcher (Triton on CUDA, the reference elsewhere; see
dispatch.py for SPARSEPIPE_KERNELS) and exposes its implementations:

    abstopk(x, k)                         AbsTopK activation sparsity, differentiable
    abstopk_torch_topk(x, k)              the same by torch.topk (the reference release's tie choice)
    weight_topk_mask(w, k, protected)     per-matrix top-k of |w|, exactly k kept
    row_topk_mask(scores, j)              the j largest scores of every row

Tie rule (all ops, all paths but abstopk_torch_topk): entries are compared exactly on their bit
patterns (keys.py); among equal values the lower index wins.
"""

from .abstopk import AbsTopK, abstopk, abstopk_reference, abstopk_torch_topk, abstopk_triton
from .dispatch import KERNELS_ENV, kernel_choice
from .row_topk import row_topk_mask, row_topk_mask_reference, row_topk_mask_triton
from .weight_topk import weight_topk_mask, weight_topk_mask_reference, weight_topk_mask_triton

__all__ = [
    "AbsTopK",
    "KERNELS_ENV",
    "abstopk",
    "abstopk_reference",
    "abstopk_torch_topk",
    "abstopk_triton",
    "kernel_choice",
    "row_topk_mask",
    "row_topk_mask_reference",
    "row_topk_mask_triton",
    "weight_topk_mask",
    "weight_topk_mask_reference",
    "weight_topk_mask_triton",
]
