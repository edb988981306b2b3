"""`sparsepipe bench train --workers 1,2`: data-parallel throughput beside the in-process cell, and bad worker lists.

No timing assertions: the numbers only have to be positive and consistent with each other.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.console import EXIT_USAGE
from sparsepipe.workers.benchmarking import usable_cpus
from sparsepipe.workers.train.bench_parallel import data_parallel_worker_counts

runner = CliRunner()


def test_only_benchmarks_that_take_workers_offer_the_option():
    assert "--workers" in runner.invoke(app, ["bench", "train", "--help"]).output
    assert "--workers" not in runner.invoke(app, ["bench", "tokenize", "--help"]).output


@pytest.mark.parametrize("workers", ["0", "a,b", "1,,2", "-1", "1.5"])
def test_a_malformed_worker_list_is_a_usage_error(workers):
    result = runner.invoke(app, ["bench", "train", "--quick", "--workers", workers])
    assert result.exit_code == EXIT_USAGE
    assert "error: --workers takes a comma list of worker counts of at least 1" in result.output


def test_more_workers_than_cpus_is_a_usage_error_before_anything_is_measured():
    too_many = usable_cpus() + 1
    result = runner.invoke(app, ["bench", "train", "--quick", "--workers", f"1,{too_many}", "--json"])
    assert result.exit_code == EXIT_USAGE
    assert f"error: --workers {too_many} needs {too_many} CPUs" in result.output
    assert "kernels" not in result.output  # it failed before the kernels were timed


def test_one_ray_train_worker_is_always_measured_as_the_baseline():
    assert data_parallel_worker_counts((2,), quick=True) == (1, 2)
    assert data_parallel_worker_counts((2, 1, 2), quick=True) == (1, 2)


@pytest.mark.slow
def test_quick_workers_bench_reports_every_configuration_side_by_side(sparsepipe, tmp_path):
    out = tmp_path / "bench.json"
    result = sparsepipe(
        "bench",
        "train",
        "--quick",
        "--workers",
        "1,2",
        "--json",
        "--out",
        str(out),
        cwd=tmp_path,
        env={"RAY_DASHBOARD_STARTUP_TIMEOUT_S": "300"},  # 60 by default: short on a busy 2-core box
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)  # stdout holds the JSON alone
    assert json.loads(out.read_text()) == report
    assert {"kernels", "steps", "data_parallel"} <= report.keys()  # today's result, and the new section

    parallel = report["data_parallel"]
    configs = parallel["configs"]
    assert list(configs) == ["in_process", "ray_train_1", "ray_train_2"]
    assert parallel["device"].startswith("cpu (") and parallel["threads_per_worker"] == 1
    for name, config in configs.items():
        assert len(config["runs"]) == parallel["rounds"] >= 2, name
        for run in config["runs"]:
            assert run["tokens_seen"] == parallel["tokens_per_run"]  # the same global batches everywhere
            assert run["tokens_per_s"] == run["tokens_seen"] / run["train_seconds"] > 0
            assert run["wall_s"] > run["train_seconds"]
        assert config["tokens_per_s_best"] == max(run["tokens_per_s"] for run in config["runs"])

    for baseline in ("ray_train_1", "in_process"):
        for n, efficiency in parallel["scaling_efficiency"][f"vs_{baseline}"].items():
            tokens_per_s = configs[f"ray_train_{n}"]["tokens_per_s_mean"]
            assert efficiency == pytest.approx(tokens_per_s / (int(n) * configs[baseline]["tokens_per_s_mean"]))
    assert parallel["scaling_efficiency"]["vs_ray_train_1"]["1"] == 1.0
