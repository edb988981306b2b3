"""A damaged token shard through the real CLI and Ray (issue 13, item 1): DAMAGED, never HIT, rebuilt as
generation 1."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_flipped_shard_is_damaged_and_run_rebuilds_it(sparsepipe, tmp_path):
    first = sparsepipe("run", "tokenize", "--preset", "smoke", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    shard = sorted((tmp_path / "artifacts" / "tokenize").glob("*/attempts/*/train/*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the timestamp check and a re-hash can tell
    shard.write_bytes(bytes(data))

    plan = sparsepipe("plan", "tokenize", "--preset", "smoke", "--json", cwd=tmp_path)
    cell = json.loads(plan.stdout)["cells"][0]
    assert cell["status"] == "DAMAGED" and cell["generation"] == 1 and shard.name in cell["reason"]
    status = json.loads(sparsepipe("status", "--json", cwd=tmp_path).stdout)
    assert status["artifacts"][0]["damaged"]
    verify = sparsepipe("verify", cwd=tmp_path)
    assert verify.returncode == 1 and "CORRUPT" in verify.stderr and "generation 1" in verify.stderr

    rebuilt = sparsepipe("run", "tokenize", "--preset", "smoke", "--json", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    cells = json.loads(rebuilt.stdout)["cells"]
    assert cells[0]["status"] == "DAMAGED" and cells[0]["generation"] == 1
    again = json.loads(sparsepipe("plan", "tokenize", "--preset", "smoke", "--json", cwd=tmp_path).stdout)
    assert again["cells"][0]["status"] == "HIT"
    assert sparsepipe("verify", cwd=tmp_path).returncode == 0
