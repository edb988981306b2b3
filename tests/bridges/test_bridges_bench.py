"""The bridges-vs-sparse-pretrain step-time benchmark runs and reports what it measured (no timing assertions)."""

from __future__ import annotations

from sparsepipe.workers.bridges.bench import bench_bridges_step


def test_quick_bench_reports_the_ratio():
    result = bench_bridges_step(device="cpu", quick=True)
    assert result["bridges_step_s"] > 0 and result["sparse_step_s"] > 0
    assert result["bridges_over_sparse"] == result["bridges_step_s"] / result["sparse_step_s"]
    assert result["locations"] == 3 and result["shape"]["n_layer"] == 1
