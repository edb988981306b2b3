"""Keys are reproducible: two clean `run full --preset smoke` into two empty stores, one local and one
on S3, give identical keys for every cell.

Pruning runs with its fixed hyperparameters: downstream keys (interventions, report) still hash every circuit,
so equal keys still mean equal circuits; CARBS is tested reproducible in tests/carbs and tests/prune/tuning (this test
took 300 s with it, half the time without)."""

from __future__ import annotations

import json

import pytest

from sparsepipe.pipeline.dag import default_registry

pytestmark = pytest.mark.slow


def _keys(result) -> dict[tuple[str, str], str]:
    assert result.returncode == 0, result.stderr[-4000:]
    cells = json.loads(result.stdout)["cells"]
    assert all(c["status"] == "RUN" and c["error"] is None for c in cells), cells
    return {(c["stage"], c["cell"]): c["key"] for c in cells}


def test_two_clean_runs_local_and_s3_give_identical_keys(sparsepipe, tmp_path, s3_url, s3_env):
    command = ("run", "full", "--preset", "smoke", "--set", "tune.enabled=false", "--json")
    local = _keys(sparsepipe(*command, "--store", str(tmp_path / "store"), cwd=tmp_path, timeout=900))
    remote = _keys(sparsepipe(*command, "--store", s3_url, cwd=tmp_path, env=s3_env, timeout=900))
    # every stage but imported (it commits only through `sparsepipe import`) runs in smoke
    assert {stage for stage, _ in local} == set(default_registry().order) - {"imported"}
    assert local == remote
