"""The reference path: compiled numba selection on the CPU, torch ops elsewhere.

Both return the same masks (same keys, same tie rule); numba only makes the
CPU, which every laptop and CI run uses, fast.
"""

import warnings

import torch

from . import select_torch

try:
    import numba  # noqa: F401  (probe only: a bug in select_numba must not be swallowed)
except ImportError as error:  # pragma: no cover - numba is a dependency
    warnings.warn(f"numba unavailable ({error}); CPU top-k falls back to slower torch ops")
    select_numba = None
else:
    from . import select_numba


def numba_available() -> bool:
    return select_numba is not None


def _compiled(x: torch.Tensor) -> bool:
    return select_numba is not None and x.device.type == "cpu"


def select_rows(
    x: torch.Tensor, k: int, absolute: bool, want_values: bool, want_keep: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(values, keep) of the k largest (|x| or x) entries of each last-dim row.

    values: x where kept, +0.0 elsewhere; keep: bool mask; each None when not wanted.
    """
    x = x.contiguous()
    if _compiled(x):
        return select_numba.select_rows(x, k, absolute, want_values, want_keep)
    keep = select_torch.select_rows(x, k, absolute)
    values = torch.where(keep, x, 0.0) if want_values else None
    return values, (keep if want_keep else None)


def select_whole(w: torch.Tensor, n_largest: int, protected: torch.Tensor | None) -> torch.Tensor:
    """Keep mask: the protected entries and the n_largest largest |w| of the others."""
    w = w.contiguous()
    protected = None if protected is None else protected.contiguous()
    if _compiled(w):
        return select_numba.select_whole(w, n_largest, protected)
    return select_torch.select_whole(w, n_largest, protected)
