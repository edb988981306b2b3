"""A data-parallel training cell survives one of its two Ray Train workers being SIGKILLed mid-run (issue 14).

The real CLI trains the smoke pretrain cell on 2 CPU workers; once the cell has saved a checkpoint in its
progress area, the test kills one worker process from outside (as the OOM killer or a lost node would).
Ray Train restarts the group, the ranks resume from the checkpoint, and the cell commits.
"""

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


def train_worker_pids(tmpdir: Path) -> list[int]:
    """Ray Train worker processes of this test's Ray instance (they inherit its private TMPDIR)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if b"RayTrainWorker" not in (proc / "cmdline").read_bytes():
                continue
            if f"TMPDIR={tmpdir}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def test_a_killed_training_worker_restarts_and_the_cell_commits(tmp_path, ray_tmpdir):
    private_tmp = ray_tmpdir
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    args = [
        "run",
        "pretrain",
        "--preset",
        "smoke",
        "--set",
        "execution.train_workers=2",
        "--set",
        "pretrain.train.steps=200",
        "--set",
        "pretrain.train.checkpoint_every=20",
    ]
    driver = subprocess.Popen(
        [*SPARSEPIPE, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline, killed = time.time() + 300, None
    while time.time() < deadline and killed is None and driver.poll() is None:
        checkpoints = list((tmp_path / "artifacts" / "pretrain").glob("*/progress/*/train_state.pt"))
        workers = train_worker_pids(private_tmp)
        if checkpoints and len(workers) == 2:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    stdout, stderr = driver.communicate(timeout=600)
    assert killed is not None, f"no checkpoint with 2 live workers seen before the run ended\n{stderr[-3000:]}"
    assert driver.returncode == 0, stderr[-3000:]
    assert "resumed at step" in stderr  # the restarted ranks picked up the checkpoint

    status = subprocess.run(
        [*SPARSEPIPE, "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    pretrain = [a for a in json.loads(status.stdout)["artifacts"] if a["stage"] == "pretrain"]
    assert pretrain and all(not a["damaged"] for a in pretrain), pretrain
    assert all(a["metrics"]["train_workers"] == 2 and a["metrics"]["steps"] == 200 for a in pretrain)
