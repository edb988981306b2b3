"""AbsTopK activation sparsity (paper §2.1, reference `maybe_activation_sparsity`).

For every last-dim row, keep the k entries of largest |x| with their signs and
zero the rest. The gradient flows through the kept entries only.

Which k entries: exactly k per row, by order keys (keys.py); ties go to the
lower index, so an all-zero row keeps (as zeros) its first k positions and
passes the gradient there. NaN counts as the largest magnitude.

The backward saves the bool keep mask (1 byte per entry), not x.
"""

import torch
from torch.autograd.function import once_differentiable

from . import reference
from .checks import check_count
from .dispatch import use_triton


class AbsTopK(torch.autograd.Function):
    """forward(x, k, select_rows, mask_grad): select_rows/mask_grad pick the implementation."""

    @staticmethod
    def forward(ctx, x, k, select_rows, mask_grad):
        values, keep = select_rows(x.detach(), k, want_keep=ctx.needs_input_grad[0])
        ctx.mask_grad = mask_grad
        ctx.save_for_backward(keep)
        return values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_values):
        (keep,) = ctx.saved_tensors
        return ctx.mask_grad(grad_values, keep), None, None, None


def _check(x: torch.Tensor, k) -> int:
    dim = x.shape[-1] if x.dim() else 0
    return check_count("abstopk", "k", k, 1, dim, f"x.shape[-1] = {dim}; k = dim keeps everything")


def _reference_select(x, k, want_keep):
    return reference.select_rows(x, k, absolute=True, want_values=True, want_keep=want_keep)


def _reference_mask_grad(grad, keep):
    return torch.where(keep, grad, 0.0)


def _triton_select(x, k, want_keep):
    from . import triton_rows

    # the kernel always writes the mask; it is what it stores besides the values
    return triton_rows.select_rows(x, k, absolute=True, want_values=True)


def _triton_mask_grad(grad, keep):
    from . import triton_rows

    return triton_rows.mask_grad(grad, keep)


def abstopk_reference(x: torch.Tensor, k: int) -> torch.Tensor:
    """AbsTopK on the reference path (numba on the CPU, torch elsewhere)."""
    k = _check(x, k)
    return AbsTopK.apply(x, k, _reference_select, _reference_mask_grad)


def abstopk_triton(x: torch.Tensor, k: int) -> torch.Tensor:
    """AbsTopK with the Triton kernels (CUDA tensors, or the CPU under TRITON_INTERPRET=1)."""
    k = _check(x, k)
    return AbsTopK.apply(x, k, _triton_select, _triton_mask_grad)


def abstopk(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest-|x| entries of every last-dim row (signs kept), zero the rest.

    x: any leading shape, float16/bfloat16/float32/float64. 1 <= k <= x.shape[-1]
    (k = x.shape[-1] is the identity). Exactly k entries per row are kept; among
    equal magnitudes the lower index wins. Differentiable: the gradient is the
    incoming gradient on kept entries and zero elsewhere.
    """
    if use_triton(x, "triton_rows"):
        return abstopk_triton(x, k)
    return abstopk_reference(x, k)


def abstopk_torch_topk(x: torch.Tensor, k: int) -> torch.Tensor:
    """AbsTopK as the reference release computes it: torch.topk(|x|, sorted=False), then scatter.

    Same as `abstopk` except among exactly equal magnitudes, where torch.topk's choice is
    implementation-defined (it may differ across devices and versions). Differentiable by autograd.
    """
    k = _check(x, k)
    indices = x.abs().topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(x).scatter(-1, indices, x.gather(-1, indices))
