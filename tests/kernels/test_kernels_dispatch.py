"""SPARSEPIPE_KERNELS and the benchmark's report."""

import math

import pytest
import torch

from sparsepipe.kernels import abstopk, kernel_choice, weight_topk_mask
from sparsepipe.kernels.bench import bench_kernels
from sparsepipe.kernels.dispatch import triton_installed, triton_interpreting


def test_auto_and_reference_run_on_the_cpu(monkeypatch):
    x = torch.randn(4, 32)
    auto = abstopk(x, 8)
    monkeypatch.setenv("SPARSEPIPE_KERNELS", "reference")
    assert kernel_choice() == "reference"
    assert torch.equal(abstopk(x, 8), auto)


def test_an_unknown_choice_is_a_value_error(monkeypatch):
    monkeypatch.setenv("SPARSEPIPE_KERNELS", "cuda")
    with pytest.raises(ValueError, match="SPARSEPIPE_KERNELS='cuda' is not one of auto, reference, triton"):
        abstopk(torch.randn(2, 4), 1)


@pytest.mark.skipif(triton_interpreting(), reason="the interpreter runs Triton on CPU tensors")
def test_forcing_triton_on_a_cpu_tensor_fails_loudly(monkeypatch):
    monkeypatch.setenv("SPARSEPIPE_KERNELS", "triton")
    message = "CUDA tensor" if triton_installed() else "not installed"
    with pytest.raises(RuntimeError, match=message):
        abstopk(torch.randn(2, 4), 1)
    with pytest.raises(RuntimeError, match=message):
        weight_topk_mask(torch.randn(2, 4), 1)


def test_quick_benchmark_reports_positive_finite_numbers():
    report = bench_kernels(device="cpu", repeats=2, quick=True)
    for key in (
        "abstopk_s",
        "abstopk_baseline_s",
        "abstopk_speedup",
        "abstopk_fwd_bwd_speedup",
        "weight_topk_s",
        "weight_topk_baseline_s",
        "weight_topk_speedup",
    ):
        assert report[key] > 0 and math.isfinite(report[key]), key
    assert report["abstopk_shape"] == [256, 128] and report["torch_version"] == torch.__version__
    assert report["device"] and report["abstopk_path"].startswith("reference")
