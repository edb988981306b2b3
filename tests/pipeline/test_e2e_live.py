"""A smoke pretrain through the real CLI and Ray: its artifact holds TensorBoard files with the train and val
losses, and `status --running` (another process, reading only the store) shows a running cell's step and loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tracking_events import read_scalars

pytestmark = pytest.mark.slow

SPARSEPIPE = [sys.executable, "-m", "sparsepipe.pipeline"]


def _pretrain(store: Path, *assignments: str) -> list[str]:
    settings = [item for assignment in assignments for item in ("--set", assignment)]
    return [*SPARSEPIPE, "run", "pretrain", "--preset", "smoke", "--store", str(store), *settings]


def test_smoke_pretrain_writes_tensorboard_and_status_running_shows_it(tmp_path, ray_tmpdir):
    env = {**os.environ, "TMPDIR": str(ray_tmpdir)}
    store = tmp_path / "store"
    done = subprocess.run(_pretrain(store), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    events = list(store.glob("pretrain/*/attempts/*/tensorboard/events.out.tfevents.*"))
    assert len(events) == 1
    scalars = read_scalars(events[0])
    assert sorted(step for step, _ in scalars["train/loss"]) == list(range(1, 21))  # smoke: 20 steps, a row each
    assert [step for step, _ in scalars["val/loss"]] == [10, 20]
    metrics = json.loads(next(store.glob("pretrain/*/MANIFEST.0000.json")).read_text())["metrics"]
    assert scalars["val/loss"][-1][1] == pytest.approx(metrics["final_val_loss"], rel=1e-6)

    # A long run (a new key), watched from another process until it shows a step and a loss, then interrupted.
    driver = subprocess.Popen(
        _pretrain(store, "pretrain.train.steps=100000", "pretrain.train.checkpoint_every=1000"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        seen, deadline = None, time.time() + 300
        while seen is None and time.time() < deadline and driver.poll() is None:
            status = subprocess.run(
                [*SPARSEPIPE, "status", "--running", "--json", "--store", str(store)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert status.returncode == 0, status.stderr[-2000:]
            running = json.loads(status.stdout)["running"]
            seen = next((r for r in running if r["stage"] == "pretrain" and r["scalars"].get("train/loss")), None)
            time.sleep(1)
        assert seen is not None, "status --running never showed the pretrain cell with a loss"
        assert seen["state"] == "running" and seen["total"] == 100000 and 0 < seen["completed"] < 100000
        assert seen["steps_per_s"] > 0 and seen["eta_s"] > 0
        table = subprocess.run(
            [*SPARSEPIPE, "status", "--running", "--store", str(store)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "250"},  # one line per cell
        )
        assert table.returncode == 0, table.stderr[-2000:]
        assert "pretrain/smoke" in table.stdout and "/100000" in table.stdout and "train/loss=" in table.stdout
    finally:
        os.killpg(driver.pid, signal.SIGINT)
        try:
            driver.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # a loaded machine: stop it outright
            os.killpg(driver.pid, signal.SIGKILL)
            driver.communicate(timeout=60)
    # Running event files are in the progress area too, where `tensorboard --logdir STORE` finds them.
    assert list(store.glob("pretrain/*/progress/0000/tensorboard/events.out.tfevents.*"))
