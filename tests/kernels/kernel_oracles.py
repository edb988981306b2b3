"""Oracles and inputs shared by the kernel tests.

The oracles are deliberately naive: a stable descending sort of the order keys
(keys.py) puts equal keys in index order, so its first k positions are the
spec, tie rule included.
"""

import torch

from sparsepipe.kernels.keys import bits_view, order_keys

INPUT_KINDS = ("randn", "ties", "zeros")


def make_input(kind: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """randn: continuous values; ties: integers in [-3, 3] (many equal magnitudes); zeros: all zero."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "randn":
        return torch.randn(shape, generator=generator).to(dtype)
    if kind == "ties":
        return torch.randint(-3, 4, shape, generator=generator).to(dtype)
    if kind == "zeros":
        return torch.zeros(shape, dtype=dtype)
    raise ValueError(kind)


def oracle_rows(x: torch.Tensor, k: int, absolute: bool) -> torch.Tensor:
    keys = order_keys(bits_view(x.contiguous()), absolute)
    first_k = torch.sort(keys, dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.zeros(x.shape, dtype=torch.bool).scatter_(-1, first_k, True)


def oracle_whole(w: torch.Tensor, k: int, protected: torch.Tensor | None = None) -> torch.Tensor:
    keys = order_keys(bits_view(w.contiguous()), absolute=True).flatten()
    n_protected = 0
    keep = torch.zeros(w.numel(), dtype=torch.bool)
    if protected is not None:
        keys = keys.masked_fill(protected.flatten(), -1)
        n_protected = int(protected.sum())
        keep |= protected.flatten()
    keep[torch.sort(keys, descending=True, stable=True).indices[: k - n_protected]] = True
    return keep.view(w.shape)
