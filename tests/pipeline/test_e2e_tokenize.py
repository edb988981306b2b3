"""End to end through the real CLI and a real Ray: local instance, S3 store, a cluster, a killed driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPARSEPIPE = [sys.executable, "-m", "sparsepipe.pipeline"]


def _cells(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_run_twice_second_is_all_hit_without_ray(sparsepipe, tmp_path):
    first = _cells(sparsepipe("run", "tokenize", "--preset", "smoke", "--json", cwd=tmp_path))
    assert first["ray_started"] and [c["status"] for c in first["cells"]] == ["RUN"]
    metrics = first["cells"][0]["metrics"]
    assert metrics["train_tokens"] > 0 and metrics["val_tokens"] > 0 and metrics["documents"] == 300
    second = _cells(sparsepipe("run", "tokenize", "--preset", "smoke", "--json", cwd=tmp_path))
    assert not second["ray_started"]
    assert [c["status"] for c in second["cells"]] == ["HIT"]
    assert second["cells"][0]["digest"] == first["cells"][0]["digest"]
    status = _cells(sparsepipe("status", "--json", cwd=tmp_path))
    assert [a["stage"] for a in status["artifacts"]] == ["tokenize"]
    verify = sparsepipe("verify", cwd=tmp_path)
    assert verify.returncode == 0 and "0 corrupt" in verify.stderr


def test_run_against_s3_store(sparsepipe, tmp_path, s3_env, s3_url):
    first = _cells(
        sparsepipe("run", "tokenize", "--preset", "smoke", "--store", s3_url, "--json", cwd=tmp_path, env=s3_env)
    )
    assert first["ray_started"] and first["ok"]
    second = _cells(
        sparsepipe("run", "tokenize", "--preset", "smoke", "--store", s3_url, "--json", cwd=tmp_path, env=s3_env)
    )
    assert not second["ray_started"] and [c["status"] for c in second["cells"]] == ["HIT"]
    verify = sparsepipe("verify", "--store", s3_url, "--json", cwd=tmp_path, env=s3_env)
    assert json.loads(verify.stdout)["corrupt"] == 0


def test_cluster_mode_on_a_two_node_ray_cluster(sparsepipe, tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024)
        cluster.wait_for_nodes()
        result = sparsepipe("run", "tokenize", "--preset", "smoke", "--cluster", cluster.address, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"Ray cluster at {cluster.address} (2 nodes" in result.stderr
    finally:
        cluster.shutdown()


def test_killed_driver_resumes_without_redoing_committed_work(sparsepipe, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number in range(60):  # big enough documents that encoding takes a while
        (corpus / f"m{number}.py").write_text(
            "".join(f"def f{number}_{i}(x):\n    return x * {i} + {number}\n" for i in range(6000))
        )
    args = [
        "run",
        "tokenize",
        "--preset",
        "smoke",
        "--set",
        f'tokenize.corpus.paths=["{corpus}"]',
        "--set",
        "tokenize.documents_per_shard=1",
        "--set",
        "tokenize.vocab_size=300",
    ]
    driver = subprocess.Popen(
        [*SPARSEPIPE, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 180
    saved: list[Path] = []
    while time.time() < deadline and len(saved) < 2:
        saved = list((tmp_path / "artifacts" / "tokenize").glob("*/progress/0000/*/part-*.parquet"))
        time.sleep(0.05)
    assert len(saved) >= 2, "the driver never saved shard progress"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not list((tmp_path / "artifacts" / "tokenize").glob("*/MANIFEST.*"))  # killed before its commit
    result = _cells(sparsepipe(*args, "--json", cwd=tmp_path))
    metrics = result["cells"][0]["metrics"]
    assert metrics["shards_resumed"] >= 2  # the shards finished before the kill were not encoded again
    assert metrics["shards"] == 60
