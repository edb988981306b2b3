"""Per-row top-k in Triton: the AbsTopK forward and backward, and row_topk_mask.

Motivation (paper, Appendix B): torch.topk sorts, which is slow and writes a
lot. One program per row instead loads the row once into registers and
bisects a threshold on its order keys (keys.py), counting `keys >= t` per
step, until exactly k keys clear it or the threshold is the k-th largest key;
ties at that key are then kept in index order with one prefix sum. Rows
are independent, so the batch dimension gives all the parallelism.

Rows up to MAX_ROW_SIZE entries fit one program; wider rows go to the
reference (dispatcher) or raise here.
"""

import torch
import triton
import triton.language as tl

from .dispatch import check_triton_device
from .keys import bits_view, sign_shift

MAX_ROW_SIZE = 16384
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def order_key(bits, ABSOLUTE: tl.constexpr, SIGN_SHIFT: tl.constexpr):
    """Order keys (keys.py) of sign-extended int32 bits."""
    magnitude_mask = (1 << SIGN_SHIFT) - 1
    if ABSOLUTE:
        return bits & magnitude_mask
    return bits ^ ((bits >> SIGN_SHIFT) & magnitude_mask)


@triton.jit
def _row_topk_kernel(
    # pointers
    bits_ptr,
    keep_ptr,
    values_ptr,
    # sizes
    n_cols,
    k,
    # strides (in elements)
    stride_bits_row,
    stride_keep_row,
    stride_values_row,
    # meta-parameters
    ABSOLUTE: tl.constexpr,
    WRITE_VALUES: tl.constexpr,
    SIGN_SHIFT: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_SIZE)
    in_row = cols < n_cols
    bits = tl.load(bits_ptr + row * stride_bits_row + cols, mask=in_row, other=0)
    keys = order_key(bits.to(tl.int32), ABSOLUTE, SIGN_SHIFT)

    # Bisection. Invariant: count(keys >= lo) = n_at_least_lo >= k and the
    # k-th largest key lies in [lo, hi]. Stops early once exactly k clear lo.
    lo = tl.min(tl.where(in_row, keys, 2147483647), axis=0).to(tl.int64)
    hi = tl.max(tl.where(in_row, keys, -2147483648), axis=0).to(tl.int64)
    n_at_least_lo = tl.sum(in_row.to(tl.int32), axis=0)
    while (lo < hi) & (n_at_least_lo != k):
        mid = (lo + hi + 1) >> 1  # in (lo, hi], so it fits the int32 keys
        n_at_least_mid = tl.sum((in_row & (keys >= mid.to(tl.int32))).to(tl.int32), axis=0)
        clears = n_at_least_mid >= k
        lo = tl.where(clears, mid, lo)
        hi = tl.where(clears, hi, mid - 1)
        n_at_least_lo = tl.where(clears, n_at_least_mid, n_at_least_lo)

    # keep all keys above lo, and as many keys equal to lo as k still needs,
    # lowest index first (when exactly k cleared lo, that is all of them)
    threshold = lo.to(tl.int32)
    greater = in_row & (keys > threshold)
    ties = in_row & (keys == threshold)
    ties_to_keep = k - tl.sum(greater.to(tl.int32), axis=0)
    tie_rank = tl.cumsum(ties.to(tl.int32), axis=0)
    keep = greater | (ties & (tie_rank <= ties_to_keep))

    tl.store(keep_ptr + row * stride_keep_row + cols, keep.to(tl.uint8), mask=in_row)
    if WRITE_VALUES:
        tl.store(values_ptr + row * stride_values_row + cols, tl.where(keep, bits, 0), mask=in_row)


@triton.jit
def _mask_grad_kernel(grad_bits_ptr, keep_ptr, out_bits_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    in_range = offsets < n_elements
    grad_bits = tl.load(grad_bits_ptr + offsets, mask=in_range, other=0)
    keep = tl.load(keep_ptr + offsets, mask=in_range, other=0)
    tl.store(out_bits_ptr + offsets, tl.where(keep != 0, grad_bits, 0), mask=in_range)


def _num_warps(block_size: int) -> int:
    # as in the fused-softmax tutorial: more warps for wider rows
    if block_size >= 8192:
        return 16
    if block_size >= 2048:
        return 8
    return 4


def supports(x: torch.Tensor) -> bool:
    return x.dtype in SUPPORTED_DTYPES and x.dim() > 0 and 0 < x.shape[-1] <= MAX_ROW_SIZE


def select_rows(x: torch.Tensor, k: int, absolute: bool, want_values: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(values, keep) of the k largest (|x| or x) entries of each last-dim row.

    values: x where kept, +0.0 elsewhere (None unless wanted); keep: bool mask.
    """
    check_triton_device(x)
    if not supports(x):
        raise RuntimeError(
            f"Triton row top-k supports {SUPPORTED_DTYPES} rows of 1..{MAX_ROW_SIZE} entries, "
            f"got {x.dtype} of shape {tuple(x.shape)}"
        )
    n_cols = x.shape[-1]
    bits = bits_view(x.contiguous()).view(-1, n_cols)
    keep = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    values = torch.empty_like(x, memory_format=torch.contiguous_format) if want_values else None
    values_bits = bits_view(values).view(-1, n_cols) if want_values else bits
    block_size = triton.next_power_of_2(n_cols)
    n_rows = bits.shape[0]
    if n_rows:
        _row_topk_kernel[(n_rows,)](
            bits,
            keep.view(torch.uint8),
            values_bits,
            n_cols,
            k,
            bits.stride(0),
            n_cols,
            values_bits.stride(0),
            ABSOLUTE=absolute,
            WRITE_VALUES=want_values,
            SIGN_SHIFT=sign_shift(bits.dtype),
            BLOCK_SIZE=block_size,
            num_warps=_num_warps(block_size),
        )
    return values, keep


def mask_grad(grad: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """grad where keep, zero elsewhere."""
    check_triton_device(grad)
    grad_bits = bits_view(grad.contiguous())
    out = torch.empty_like(grad, memory_format=torch.contiguous_format)
    n_elements = grad.numel()
    block_size = 1024
    if n_elements:
        _mask_grad_kernel[(triton.cdiv(n_elements, block_size),)](
            grad_bits, keep.contiguous().view(torch.uint8), bits_view(out), n_elements, BLOCK_SIZE=block_size
        )
    return out
