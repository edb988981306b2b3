"""Live records of running cells in the store, and `status --running` reading them (local and S3 stores)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sparsepipe.pipeline.live import STALE_AFTER_S, LiveStatus, running_cells
from sparsepipe.pipeline.store import CommitRecord, StoreSpec


def _live(store, key: str, cell: str = "smoke") -> LiveStatus:
    return LiveStatus(store.progress_area("pretrain", key, 0), "pretrain", cell, key, 0)


def test_a_running_cell_shows_its_step_losses_rate_and_eta_until_it_commits(store_url, tmp_path):
    store = StoreSpec(store_url).open()
    live = _live(store, "a" * 64)
    live.observe({"completed": 10, "total": 110, "description": "loss 3.0"})
    live._first = (live._first[0] - 10.0, 10)  # as if the first count came 10 s ago
    live.observe({"completed": 30, "total": 110, "scalars": {"train/loss": 2.5, "val/loss": None}})
    live.write()
    (record,) = running_cells(store)
    assert (record["stage"], record["cell"], record["completed"], record["total"]) == ("pretrain", "smoke", 30, 110)
    assert record["scalars"] == {"train/loss": 2.5} and record["step"] == 30
    assert record["steps_per_s"] == pytest.approx(2.0, rel=0.05) and record["eta_s"] == pytest.approx(40, rel=0.05)
    assert running_cells(store, now=time.time() + STALE_AFTER_S + 1)[0]["state"] == "stale"

    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("x")
    store.commit(CommitRecord("pretrain", "a" * 64, "smoke", {}, {}), out, 0)
    assert running_cells(store) == []  # committed: no longer running, whatever its record says


def test_an_ended_cell_is_not_running(tmp_path):
    store = StoreSpec(str(tmp_path / "store")).open()
    _live(store, "b" * 64).end(ok=False)
    assert running_cells(store) == []


def test_status_running_prints_a_table_and_json(sparsepipe, tmp_path):
    store = StoreSpec(str(tmp_path / "store")).open()
    live = _live(store, "c" * 64)
    live.observe({"completed": 5, "total": 20, "scalars": {"train/loss": 4.25}})
    live.write()
    table = sparsepipe("status", "--running", "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "pretrain/smoke" in table.stdout and "5/20" in table.stdout and "train/loss=4.25" in table.stdout
    as_json = sparsepipe("status", "--running", "--json", "--store", str(tmp_path / "store"), cwd=tmp_path)
    (record,) = json.loads(as_json.stdout)["running"]
    assert record["completed"] == 5 and record["scalars"] == {"train/loss": 4.25}
    usage = sparsepipe("status", "--watch", "--store", str(tmp_path / "store"), cwd=Path(tmp_path))
    assert usage.returncode == 2 and "--watch goes with --running" in usage.stderr
