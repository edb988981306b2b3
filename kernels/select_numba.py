"""Compiled CPU top-k selection (numba): the reference path on every CPU.

Two algorithms, both on integer order keys (keys.py), both exact with the
lower-index tie rule:

- per row (AbsTopK, row_topk_mask): the paper's threshold bisection. A row of
  a few thousand keys sits in L1, and counting `keys >= t` is a vectorised
  loop, so ~20 counting passes beat torch.topk's partial sort.
- whole matrix (weight top-k): a radix select. Two histogram passes of
  16-bit digits (fp32) pin the exact k-th largest key, where a bisection
  would stream the whole matrix ~30 times; small matrices use 8-bit digits.

The compiled functions are serial and release the GIL; a thread pool runs them
on chunks (rows, or ranges of the flat matrix). numba's own parallel=True
would compile ~4x slower, abort on concurrent calls under its workqueue layer
and is not fork-safe under OpenMP.

Importing this module imports numba; reference.py falls back to torch ops
when that fails.
"""

import concurrent.futures
import os
import threading

import numba
import numpy as np
import torch

from .keys import bits_view, sign_shift

MIN_ELEMENTS_FOR_WIDE_DIGITS = 1 << 20  # below this, zeroing and scanning 2^16 bins dominates
MIN_ELEMENTS_PER_THREAD = 1 << 16  # below this a thread costs more than it saves

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_pid = -1  # a pool inherited through fork has no threads: make a new one
_pool_lock = threading.Lock()


@numba.njit(inline="always")
def _order_key(bits, absolute, magnitude_mask, shift):
    if absolute:
        return bits & magnitude_mask
    return bits ^ ((bits >> shift) & magnitude_mask)


@numba.njit(inline="always")
def _count_at_least(keys, threshold):
    count = 0
    for i in range(keys.size):
        count += keys[i] >= threshold
    return count


@numba.njit(inline="always")
def _count_greater(keys, threshold):
    count = 0
    for i in range(keys.size):
        count += keys[i] > threshold
    return count


@numba.njit(inline="always")
def _upper_midpoint(lo, hi):
    # ceil((lo + hi) / 2) without overflowing: int64 keys can span the whole range
    return (lo & hi) + ((lo ^ hi) >> 1) + ((lo ^ hi) & 1)


@numba.njit(cache=True, nogil=True)
def _select_rows(bits, k, absolute, magnitude_mask, shift, keep, values, write_keep, write_values):
    """Per-row top-k of bits (rows, cols) into keep / values (left alone unless written)."""
    n_rows, n_cols = bits.shape
    keys = np.empty(n_cols, bits.dtype)
    for row in range(n_rows):
        row_bits = bits[row]
        lo = hi = np.int64(_order_key(row_bits[0], absolute, magnitude_mask, shift))
        for i in range(n_cols):
            key = _order_key(row_bits[i], absolute, magnitude_mask, shift)
            keys[i] = key
            lo = min(lo, key)
            hi = max(hi, key)
        # bisection on the threshold; invariant: count(keys >= lo) >= k and the
        # k-th largest key lies in [lo, hi]; stops early once exactly k clear lo
        exact = False
        while lo < hi:
            mid = _upper_midpoint(lo, hi)
            count = _count_at_least(keys, mid)
            if count >= k:
                lo = mid
                if count == k:
                    exact = True
                    break
            else:
                hi = mid - 1
        if exact:
            for i in range(n_cols):
                kept = keys[i] >= lo
                if write_keep:
                    keep[row, i] = kept
                if write_values:
                    values[row, i] = row_bits[i] if kept else 0
        else:
            # lo is the k-th largest key: keep everything above it and the
            # first ties_left entries equal to it
            ties_left = k - _count_greater(keys, lo)
            for i in range(n_cols):
                key = keys[i]
                kept = key > lo
                if key == lo and ties_left > 0:
                    kept = True
                    ties_left -= 1
                if write_keep:
                    keep[row, i] = kept
                if write_values:
                    values[row, i] = row_bits[i] if kept else 0


@numba.njit(cache=True, nogil=True)
def _digit_histogram(bits, protected, has_protected, magnitude_mask, shift, match_shift, match, counts):
    """counts[digit] += 1 for each unprotected key whose bits above match_shift equal match."""
    digit_mask = counts.size - 1
    for i in range(bits.size):
        if has_protected and protected[i]:
            continue
        key = np.int64(bits[i] & magnitude_mask)
        if (key >> match_shift) == match:
            counts[(key >> shift) & digit_mask] += 1


@numba.njit(cache=True)
def _pick_digit(histograms, remaining):
    """(the digit holding the remaining-th largest key, how many keys have a larger digit).

    histograms: (chunks, bins) counts to add up; scans from the top digit down.
    """
    above = 0
    for digit in range(histograms.shape[1] - 1, 0, -1):
        count = 0
        for chunk in range(histograms.shape[0]):
            count += histograms[chunk, digit]
        if above + count >= remaining:
            return digit, above
        above += count
    return 0, above


@numba.njit(cache=True, nogil=True)
def _keep_at_least(bits, protected, has_protected, magnitude_mask, threshold, keep):
    """keep = protected or key >= threshold; returns how many unprotected keys equal threshold."""
    ties = 0
    for i in range(bits.size):
        key = bits[i] & magnitude_mask
        is_protected = has_protected and protected[i]
        keep[i] = is_protected or key >= threshold
        ties += (not is_protected) and key == threshold
    return ties


@numba.njit(cache=True, nogil=True)
def _unkeep_ties_after(bits, protected, has_protected, magnitude_mask, threshold, ties_allowed, keep):
    """Unmark the unprotected keys equal to threshold beyond the first ties_allowed."""
    seen = 0
    for i in range(bits.size):
        if has_protected and protected[i]:
            continue
        if (bits[i] & magnitude_mask) == threshold:
            seen += 1
            if seen > ties_allowed:
                keep[i] = False


def _n_threads(n_elements: int) -> int:
    """As many threads as torch was given (Ray sets that per task), if the work pays for them."""
    return max(1, min(torch.get_num_threads(), n_elements // MIN_ELEMENTS_PER_THREAD))


def _run_chunks(function, chunks: list[tuple]) -> list:
    """function(*args) for each chunk's args, on the thread pool when there are several."""
    global _pool, _pool_pid
    if len(chunks) == 1:
        return [function(*chunks[0])]
    with _pool_lock:
        if _pool_pid != os.getpid():
            _pool = concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="topk")
            _pool_pid = os.getpid()
        pool = _pool
    return list(pool.map(lambda args: function(*args), chunks))


def _bounds(n: int, n_chunks: int) -> list[tuple[int, int]]:
    return [(c * n // n_chunks, (c + 1) * n // n_chunks) for c in range(n_chunks)]


def _magnitude_mask(bits: np.ndarray):
    return bits.dtype.type((1 << (bits.dtype.itemsize * 8 - 1)) - 1)


def select_rows(
    x: torch.Tensor, k: int, absolute: bool, want_values: bool, want_keep: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(values, keep) of the per-row top-k of a contiguous CPU tensor.

    values: x where kept, +0.0 elsewhere; keep: bool mask. Each is None when not wanted.
    """
    n_cols = x.shape[-1]
    bits = bits_view(x).reshape(-1, n_cols).numpy()
    values = torch.empty_like(x) if want_values else None
    keep = torch.empty(x.shape, dtype=torch.bool) if want_keep else None
    values_rows = bits_view(values).view(-1, n_cols).numpy() if want_values else bits[:0]
    keep_rows = keep.view(-1, n_cols).numpy() if want_keep else np.empty((0, n_cols), np.bool_)
    magnitude_mask = _magnitude_mask(bits)
    shift = sign_shift(bits_view(x).dtype)
    rows = _bounds(bits.shape[0], _n_threads(bits.size))
    _run_chunks(
        _select_rows,
        [  # unwanted outputs are (0, n_cols): every slice is empty too
            (
                bits[r0:r1],
                k,
                absolute,
                magnitude_mask,
                shift,
                keep_rows[r0:r1],
                values_rows[r0:r1],
                want_keep,
                want_values,
            )
            for r0, r1 in rows
        ],
    )
    return values, keep


def _chunk_arrays(bits, protected, lo, hi) -> tuple:
    """The (bits, protected, has_protected) arguments of the compiled functions for one chunk."""
    if protected is None:
        return bits[lo:hi], np.empty(0, np.bool_), False
    return bits[lo:hi], protected[lo:hi], True


def _kth_largest_magnitude(bits, protected, n_largest, chunks) -> tuple[int, int]:
    """(k-th largest unprotected key for k = n_largest, how many keys equal to it to keep)."""
    magnitude_mask = _magnitude_mask(bits)
    value_bits = bits.dtype.itemsize * 8 - 1
    radix_bits = 16 if bits.size >= MIN_ELEMENTS_FOR_WIDE_DIGITS else 8
    prefix, remaining = 0, n_largest
    top_shift = ((value_bits - 1) // radix_bits) * radix_bits
    for shift in range(top_shift, -1, -radix_bits):
        # count the next digit of the keys whose higher digits match the prefix so far
        match_shift = min(shift + radix_bits, 63)
        histograms = np.zeros((len(chunks), 1 << radix_bits), np.int64)
        _run_chunks(
            _digit_histogram,
            [
                (
                    *_chunk_arrays(bits, protected, lo, hi),
                    magnitude_mask,
                    shift,
                    match_shift,
                    prefix >> match_shift,
                    histograms[c],
                )
                for c, (lo, hi) in enumerate(chunks)
            ],
        )
        digit, above = _pick_digit(histograms, remaining)
        remaining -= above
        prefix |= int(digit) << shift
    return prefix, remaining


def select_whole(w: torch.Tensor, n_largest: int, protected: torch.Tensor | None) -> torch.Tensor:
    """Keep mask of a contiguous CPU tensor: the protected entries and the
    n_largest largest |w| of the others."""
    if n_largest == 0:
        return protected.clone() if protected is not None else torch.zeros(w.shape, dtype=torch.bool)
    bits = bits_view(w).reshape(-1).numpy()
    protected = None if protected is None else protected.reshape(-1).numpy()
    chunks = _bounds(bits.size, _n_threads(bits.size))
    threshold, ties_to_keep = _kth_largest_magnitude(bits, protected, n_largest, chunks)

    keep = torch.empty(w.shape, dtype=torch.bool)
    keep_flat = keep.view(-1).numpy()
    magnitude_mask = _magnitude_mask(bits)
    ties_in_chunk = _run_chunks(
        _keep_at_least,
        [(*_chunk_arrays(bits, protected, lo, hi), magnitude_mask, threshold, keep_flat[lo:hi]) for lo, hi in chunks],
    )
    # every tie was kept; hand the budget out in index order and unmark the surplus
    surplus = []
    for (lo, hi), ties in zip(chunks, ties_in_chunk):
        allowed = min(ties, ties_to_keep)
        ties_to_keep -= allowed
        if allowed < ties:
            chunk = _chunk_arrays(bits, protected, lo, hi)
            surplus.append((*chunk, magnitude_mask, threshold, allowed, keep_flat[lo:hi]))
    if surplus:
        _run_chunks(_unkeep_ties_after, surplus)
    return keep
