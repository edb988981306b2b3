"""Whole-matrix weight top-k in Triton: a multi-block threshold search.

Motivation: the weight top-k runs on every matrix after every optimizer step
(paper §2.1), over millions of entries with k = numel/64 or so. torch.topk
sorts; we only need the k-th largest magnitude key (keys.py), and a mask.

The threshold is found digit by digit, RADIX_BITS at a time from the top:
each level is one pass in which every block histograms the next digit of the
keys still matching the digits fixed so far and adds its counts into a global
histogram (a bisection that settles RADIX_BITS bits per pass, 4 passes for
fp32), then one tiny program picks the digit holding the k-th largest key.
Everything stays on the device: the search state is a 3-entry int64 tensor
(threshold so far, ties still to keep, ties at the threshold).

The mask pass keeps keys above the threshold and the first ties by flat index;
a per-block tie count with an exclusive cumsum gives each block its offset
(and is skipped when every tie is kept, the usual case).
"""

import torch
import triton
import triton.language as tl

from .dispatch import check_triton_device
from .keys import bits_view, sign_shift
from .triton_rows import SUPPORTED_DTYPES, order_key

RADIX_BITS = 8
MAX_ELEMENTS = 2**31 - 1


def _launch_config() -> dict:
    return {"BLOCK_SIZE": 4096, "num_warps": 8}


@triton.jit
def _load_eligible_keys(
    bits_ptr, protected_ptr, offsets, n_elements, HAS_PROTECTED: tl.constexpr, SIGN_SHIFT: tl.constexpr
):
    """Magnitude keys of a block, and which of them compete (in range, not protected)."""
    in_range = offsets < n_elements
    bits = tl.load(bits_ptr + offsets, mask=in_range, other=0).to(tl.int32)
    keys = order_key(bits, True, SIGN_SHIFT)
    eligible = in_range
    if HAS_PROTECTED:
        eligible = eligible & (tl.load(protected_ptr + offsets, mask=in_range, other=1) == 0)
    return keys, eligible


@triton.jit
def _digit_histogram_kernel(
    bits_ptr,
    protected_ptr,
    state_ptr,
    histogram_ptr,
    n_elements,
    SHIFT: tl.constexpr,
    FIRST_LEVEL: tl.constexpr,
    HAS_PROTECTED: tl.constexpr,
    SIGN_SHIFT: tl.constexpr,
    RADIX_BITS: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    keys, eligible = _load_eligible_keys(bits_ptr, protected_ptr, offsets, n_elements, HAS_PROTECTED, SIGN_SHIFT)
    if not FIRST_LEVEL:
        prefix = tl.load(state_ptr).to(tl.int32)  # digits above SHIFT + RADIX_BITS are fixed
        eligible = eligible & ((keys >> (SHIFT + RADIX_BITS)) == (prefix >> (SHIFT + RADIX_BITS)))
    digits = (keys >> SHIFT) & ((1 << RADIX_BITS) - 1)
    counts = tl.histogram(digits, 1 << RADIX_BITS, mask=eligible)
    bins = tl.arange(0, 1 << RADIX_BITS)
    tl.atomic_add(histogram_ptr + bins, counts, mask=counts > 0)


@triton.jit
def _pick_digit_kernel(histogram_ptr, state_ptr, SHIFT: tl.constexpr, RADIX_BITS: tl.constexpr):
    bins = tl.arange(0, 1 << RADIX_BITS)
    counts = tl.load(histogram_ptr + bins).to(tl.int64)
    prefix = tl.load(state_ptr)
    remaining = tl.load(state_ptr + 1)
    at_least = tl.sum(counts, axis=0) - tl.cumsum(counts, axis=0) + counts  # keys with digit >= bin
    digit = tl.sum((at_least >= remaining).to(tl.int64), axis=0) - 1  # at_least never increases
    above = tl.sum(tl.where(bins > digit, counts, 0), axis=0)
    tl.store(state_ptr, prefix | (digit << SHIFT))
    tl.store(state_ptr + 1, remaining - above)
    # after the last digit this is the number of eligible keys equal to the threshold
    tl.store(state_ptr + 2, tl.sum(tl.where(bins == digit, counts, 0), axis=0))
    tl.store(histogram_ptr + bins, tl.zeros_like(counts).to(tl.int32))  # ready for the next level


@triton.jit
def _count_ties_kernel(
    bits_ptr,
    protected_ptr,
    state_ptr,
    block_ties_ptr,
    n_elements,
    HAS_PROTECTED: tl.constexpr,
    SIGN_SHIFT: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    pid = tl.program_id(0)
    threshold = tl.load(state_ptr).to(tl.int32)
    ties_to_keep = tl.load(state_ptr + 1)
    ties_at_threshold = tl.load(state_ptr + 2)
    # when every tie is kept their ranks do not matter: load nothing, count zero
    n_to_scan = tl.where(ties_to_keep < ties_at_threshold, n_elements, 0)
    offsets = pid.to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    keys, eligible = _load_eligible_keys(bits_ptr, protected_ptr, offsets, n_to_scan, HAS_PROTECTED, SIGN_SHIFT)
    tl.store(block_ties_ptr + pid, tl.sum((eligible & (keys == threshold)).to(tl.int64), axis=0))


@triton.jit
def _write_keep_kernel(
    bits_ptr,
    protected_ptr,
    state_ptr,
    ties_before_block_ptr,
    keep_ptr,
    n_elements,
    HAS_PROTECTED: tl.constexpr,
    SIGN_SHIFT: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    pid = tl.program_id(0)
    offsets = pid.to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    keys, eligible = _load_eligible_keys(bits_ptr, protected_ptr, offsets, n_elements, HAS_PROTECTED, SIGN_SHIFT)
    threshold = tl.load(state_ptr).to(tl.int32)
    ties_to_keep = tl.load(state_ptr + 1)
    ties = eligible & (keys == threshold)
    tie_rank = tl.load(ties_before_block_ptr + pid) + tl.cumsum(ties.to(tl.int64), axis=0)
    keep = (eligible & (keys > threshold)) | (ties & (tie_rank <= ties_to_keep))
    in_range = offsets < n_elements
    if HAS_PROTECTED:
        keep = keep | (in_range & ~eligible)
    tl.store(keep_ptr + offsets, keep.to(tl.uint8), mask=in_range)


def supports(w: torch.Tensor) -> bool:
    return w.dtype in SUPPORTED_DTYPES and w.numel() <= MAX_ELEMENTS


def select_whole(w: torch.Tensor, n_largest: int, protected: torch.Tensor | None) -> torch.Tensor:
    """Keep mask: the protected entries and the n_largest largest |w| of the others.

    The caller has checked that n_largest does not exceed the unprotected entries.
    """
    check_triton_device(w)
    if not supports(w):
        raise RuntimeError(
            f"Triton weight top-k supports {SUPPORTED_DTYPES} tensors of at most "
            f"{MAX_ELEMENTS} entries, got {w.dtype} with {w.numel()}"
        )
    bits = bits_view(w.contiguous()).view(-1)
    has_protected = protected is not None
    protected_flags = protected.contiguous().view(-1).view(torch.uint8) if has_protected else bits
    if n_largest == 0:
        return protected.clone() if has_protected else torch.zeros(w.shape, dtype=torch.bool, device=w.device)
    keep = torch.empty(w.shape, dtype=torch.bool, device=w.device)

    config = _launch_config()
    block_size = config["BLOCK_SIZE"]
    n_elements = bits.numel()
    grid = (triton.cdiv(n_elements, block_size),)
    shift_of_sign = sign_shift(bits.dtype)
    state = torch.tensor([0, n_largest, 0], dtype=torch.int64, device=w.device)
    histogram = torch.zeros(1 << RADIX_BITS, dtype=torch.int32, device=w.device)
    top_shift = ((shift_of_sign - 1) // RADIX_BITS) * RADIX_BITS
    for shift in range(top_shift, -1, -RADIX_BITS):
        _digit_histogram_kernel[grid](
            bits,
            protected_flags,
            state,
            histogram,
            n_elements,
            SHIFT=shift,
            FIRST_LEVEL=shift == top_shift,
            HAS_PROTECTED=has_protected,
            SIGN_SHIFT=shift_of_sign,
            RADIX_BITS=RADIX_BITS,
            **config,
        )
        _pick_digit_kernel[(1,)](histogram, state, SHIFT=shift, RADIX_BITS=RADIX_BITS)

    block_ties = torch.empty(grid[0], dtype=torch.int64, device=w.device)
    _count_ties_kernel[grid](
        bits,
        protected_flags,
        state,
        block_ties,
        n_elements,
        HAS_PROTECTED=has_protected,
        SIGN_SHIFT=shift_of_sign,
        **config,
    )
    ties_before_block = block_ties.cumsum(0) - block_ties
    _write_keep_kernel[grid](
        bits,
        protected_flags,
        state,
        ties_before_block,
        keep.view(-1).view(torch.uint8),
        n_elements,
        HAS_PROTECTED=has_protected,
        SIGN_SHIFT=shift_of_sign,
        **config,
    )
    return keep
