"""Order keys: the integers every top-k in this package selects on.

Selection never compares floats. Each float is read as the signed integer with
the same bits (float32 -> int32, bfloat16/float16 -> int16, float64 -> int64)
and mapped to an *order key*:

- magnitude key (AbsTopK, weight top-k): the bits with the sign bit cleared.
  For IEEE floats this integer grows with |x|, so the k largest keys are the k
  largest magnitudes. -0.0 and +0.0 share key 0; NaN sits above +inf.
- signed key (row_topk_mask): negative floats get their magnitude bits flipped,
  so the key grows with x itself, from -NaN below -inf up to +NaN above +inf.

Integer keys make every comparison exact, so the threshold search of the
paper's Appendix B ("binary search over a threshold") ends on the exact k-th
largest key in a bounded number of steps, and equal keys are real ties.

Tie rule, shared by every implementation: among entries with equal keys the one
with the lower index is kept (index along the row for the per-row ops, the
row-major flat index for the whole-matrix op). An all-zero row is all ties, so
its first k positions are the kept ones.
"""

import torch

BITS_DTYPE = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


def bits_view(x: torch.Tensor) -> torch.Tensor:
    """The integer tensor sharing x's storage and bits."""
    if x.dtype not in BITS_DTYPE:
        supported = ", ".join(str(dtype) for dtype in BITS_DTYPE)
        raise TypeError(f"top-k selection needs a floating tensor ({supported}), got {x.dtype}")
    return x.view(BITS_DTYPE[x.dtype])


def sign_shift(bits_dtype: torch.dtype) -> int:
    """Position of the sign bit: 15, 31 or 63."""
    return torch.iinfo(bits_dtype).bits - 1


def order_keys(bits: torch.Tensor, absolute: bool) -> torch.Tensor:
    """Magnitude keys (absolute=True) or signed keys of a bits_view."""
    shift = sign_shift(bits.dtype)
    magnitude_mask = (1 << shift) - 1
    if absolute:
        return bits & magnitude_mask
    return bits ^ ((bits >> shift) & magnitude_mask)
