"""Which implementation a public op runs: the Triton kernel or the reference.

SPARSEPIPE_KERNELS (read on every call, so tests and benchmarks can flip it):
  auto       Triton for CUDA tensors it supports, the reference for the rest (default)
  reference  always the reference (numba on the CPU, torch elsewhere)
  triton     always Triton; fails loudly where it cannot run
"""

import functools
import importlib
import importlib.util
import os

import torch

KERNELS_ENV = "SPARSEPIPE_KERNELS"
CHOICES = ("auto", "reference", "triton")


def kernel_choice() -> str:
    choice = os.environ.get(KERNELS_ENV, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"{KERNELS_ENV}={choice!r} is not one of {', '.join(CHOICES)}")
    return choice


@functools.cache
def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """True when Triton runs kernels with its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def use_triton(tensor: torch.Tensor, kernel_module: str) -> bool:
    """Decide the path for one call.

    kernel_module: the op's Triton module in this package ("triton_rows",
    "triton_whole"); under auto its supports(tensor) decides, so unsupported
    dtypes and shapes fall back to the reference. Imported only for CUDA
    tensors, so CPU-only runs never import triton.
    """
    choice = kernel_choice()
    if choice == "reference":
        return False
    if choice == "triton":
        if not triton_installed():
            raise RuntimeError(f"{KERNELS_ENV}=triton but triton is not installed")
        return True
    if not (tensor.is_cuda and triton_installed()):
        return False
    try:
        module = importlib.import_module(f"{__package__}.{kernel_module}")
    except ImportError:  # triton present but unusable on this platform: the reference path
        return False
    return module.supports(tensor)


def check_triton_device(tensor: torch.Tensor) -> None:
    if not (tensor.is_cuda or triton_interpreting()):
        raise RuntimeError(
            f"the Triton kernels need a CUDA tensor (got one on {tensor.device}); "
            f"set TRITON_INTERPRET=1 before importing triton to run them on the CPU, "
            f"or {KERNELS_ENV}=reference"
        )
