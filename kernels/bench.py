"""Benchmark the dispatchers against the torch.topk baselines, side by side.

    python -m sparsepipe.kernels.bench [--quick] [--repeats N] [--device cpu|cuda|auto]

prints one JSON object (see bench_kernels). Each repeat times ours and the
baseline back to back on the same tensor, so drift on a shared machine hits
both; the median over repeats is reported.
"""

import argparse
import importlib.metadata
import json
import statistics
import time
from collections.abc import Callable

import torch

from . import reference
from .abstopk import abstopk, abstopk_torch_topk
from .device import device_name, pick_device
from .dispatch import kernel_choice, triton_installed, use_triton
from .weight_topk import weight_topk_mask

# activations: a batch of 64 sequences x 256 tokens at width 1024, k = width/4 (the paper's default);
# weight: one 2048 x 8192 matrix keeping 1/64 of its entries
FULL_SHAPES = dict(activations=(64 * 256, 1024), activation_k=256, weight=(2048, 8192), weight_keep_every=64)
QUICK_SHAPES = dict(activations=(256, 128), activation_k=32, weight=(128, 256), weight_keep_every=64)


def abstopk_baseline(x: torch.Tensor, k: int) -> torch.Tensor:
    """The reference release's AbsTopK: torch.topk on |x|, then scatter."""
    return abstopk_torch_topk(x, k)


def weight_topk_baseline(w: torch.Tensor, k: int) -> torch.Tensor:
    """torch.topk over the flattened |w|, scattered into a bool mask."""
    indices = w.abs().flatten().topk(k, sorted=False).indices
    keep = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
    keep[indices] = True
    return keep.view(w.shape)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _path_taken(tensor: torch.Tensor, kernel_module: str) -> str:
    if use_triton(tensor, kernel_module):
        return "triton"
    if tensor.device.type == "cpu" and reference.numba_available():
        return "reference (numba)"
    return "reference (torch)"


def _time_pair(ours: Callable, baseline: Callable, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median seconds of ours and of baseline, timed alternately after one warm-up each."""

    def seconds(fn):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    seconds(ours)  # first call compiles (numba / Triton)
    seconds(baseline)
    ours_times, baseline_times = [], []
    for _ in range(repeats):
        ours_times.append(seconds(ours))
        baseline_times.append(seconds(baseline))
    return statistics.median(ours_times), statistics.median(baseline_times)


def bench_kernels(device: str = "auto", repeats: int = 7, quick: bool = False, seed: int = 0) -> dict:
    """Time AbsTopK and the weight top-k (dispatchers) against torch.topk baselines.

    Returns shapes, median seconds, speedups (baseline time / ours) for the
    AbsTopK forward, AbsTopK forward + backward and the weight top-k mask, the
    path the dispatcher took, the device name and library versions.
    """
    if device == "auto":
        device = pick_device()
    device = torch.device(device)
    shapes = QUICK_SHAPES if quick else FULL_SHAPES
    generator = torch.Generator().manual_seed(seed)

    x = torch.randn(shapes["activations"], generator=generator).to(device)
    activation_k = shapes["activation_k"]
    abstopk_ours, abstopk_base = _time_pair(
        lambda: abstopk(x, activation_k), lambda: abstopk_baseline(x, activation_k), repeats, device
    )

    # a training step also saves what the backward needs and runs it
    x_train = x.clone().requires_grad_()
    upstream = torch.randn(shapes["activations"], generator=generator).to(device)

    def forward_backward(op):
        def step():
            op(x_train, activation_k).backward(upstream)
            x_train.grad = None

        return step

    train_ours, train_base = _time_pair(forward_backward(abstopk), forward_backward(abstopk_baseline), repeats, device)

    w = (0.02 * torch.randn(shapes["weight"], generator=generator)).to(device)
    weight_k = w.numel() // shapes["weight_keep_every"]
    weight_ours, weight_base = _time_pair(
        lambda: weight_topk_mask(w, weight_k), lambda: weight_topk_baseline(w, weight_k), repeats, device
    )

    return {
        "device": device_name(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "kernels_env": kernel_choice(),
        "torch_version": torch.__version__,
        "triton_version": _version("triton") if triton_installed() else None,
        "numba_version": _version("numba"),
        "repeats": repeats,
        "abstopk_shape": list(x.shape),
        "abstopk_k": activation_k,
        "abstopk_path": _path_taken(x, "triton_rows"),
        "abstopk_s": abstopk_ours,
        "abstopk_baseline_s": abstopk_base,
        "abstopk_speedup": abstopk_base / abstopk_ours,
        "abstopk_fwd_bwd_s": train_ours,
        "abstopk_fwd_bwd_baseline_s": train_base,
        "abstopk_fwd_bwd_speedup": train_base / train_ours,
        "weight_topk_shape": list(w.shape),
        "weight_topk_k": weight_k,
        "weight_topk_path": _path_taken(w, "triton_whole"),
        "weight_topk_s": weight_ours,
        "weight_topk_baseline_s": weight_base,
        "weight_topk_speedup": weight_base / weight_ours,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small shapes, for smoke tests")
    args = parser.parse_args()
    print(json.dumps(bench_kernels(args.device, args.repeats, args.quick), indent=2))


if __name__ == "__main__":
    main()
