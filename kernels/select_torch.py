"""Top-k selection in plain torch ops: runs on any device, the readable spec.

Used where the compiled CPU path (select_numba.py) cannot run: CUDA tensors
with the reference forced or unsupported by Triton, and machines without numba.
"""

import torch

from .keys import bits_view, order_keys


def keep_largest_keys(keys: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k largest keys along the last dim; lower index wins ties.

    keys: integer order keys, shape (..., n), 1 <= k <= n.
    """
    n = keys.shape[-1]
    kth_largest = keys.kthvalue(n - k + 1, dim=-1, keepdim=True).values
    greater = keys > kth_largest
    ties = keys == kth_largest
    ties_to_keep = k - greater.sum(dim=-1, keepdim=True)
    return greater | (ties & (ties.cumsum(dim=-1) <= ties_to_keep))


def select_rows(x: torch.Tensor, k: int, absolute: bool) -> torch.Tensor:
    """Keep mask of the k largest (|x| or x) entries of every last-dim row."""
    return keep_largest_keys(order_keys(bits_view(x), absolute), k)


def select_whole(w: torch.Tensor, n_largest: int, protected: torch.Tensor | None) -> torch.Tensor:
    """Keep mask: the protected entries and the n_largest largest |w| of the others."""
    keys = order_keys(bits_view(w), absolute=True).flatten()
    if protected is not None:
        # magnitude keys are >= 0, so -1 sorts protected entries below every candidate
        keys = keys.masked_fill(protected.flatten(), -1)
    keep = torch.zeros_like(keys, dtype=torch.bool)
    if n_largest:
        keep = keep_largest_keys(keys, n_largest)
    if protected is not None:
        keep |= protected.flatten()
    return keep.view(w.shape)
