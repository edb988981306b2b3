"""The sparse-vs-dense step-time benchmark runs and reports what it measured (no timing assertions)."""

from __future__ import annotations

from sparsepipe.workers.train.bench import bench_step_times


def test_quick_bench_reports_both_step_times():
    result = bench_step_times(device="cpu", quick=True)
    assert result["sparse_step_s"] > 0 and result["dense_step_s"] > 0
    assert result["sparse_over_dense"] == result["sparse_step_s"] / result["dense_step_s"]
    assert result["shape"]["afrac"] == 0.25 and result["device"].startswith("cpu")
