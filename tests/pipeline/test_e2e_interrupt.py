"""Ctrl-C through the real CLI and Ray: exit 130, no scratch folders left, and the rerun says in its log that it resumed
(issue 13 items 13 and 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPARSEPIPE = [sys.executable, "-m", "sparsepipe.pipeline"]


def test_ctrl_c_cleans_scratch_and_the_rerun_logs_its_resume(tmp_path, ray_tmpdir):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number in range(96):
        (corpus / f"m{number}.py").write_text(
            "".join(f"def f{number}_{i}(x):\n    return x * {i} + {number}\n" for i in range(6000))
        )
    private_tmp = ray_tmpdir
    env = {**os.environ, "TMPDIR": str(private_tmp)}
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
        # Every real document, nothing generated: 96 one-document shards, so the cell is still running at Ctrl-C
        # (32 finished before the Ctrl-C landed on an idle machine).
        "--set",
        "tokenize.corpus.max_bytes=null",
        "--set",
        "tokenize.generated.weight=0",
    ]
    driver = subprocess.Popen(
        [*SPARSEPIPE, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 180
    saved: list[Path] = []
    while time.time() < deadline and not saved:
        saved = list((tmp_path / "artifacts" / "tokenize").glob("*/progress/0000/*/part-*.parquet"))
        time.sleep(0.05)
    assert saved, "the driver never saved shard progress"
    assert list(private_tmp.glob("sparsepipe-tokenize-*")), "no scratch folder while the cell runs"
    os.killpg(driver.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert list(private_tmp.glob("sparsepipe-*")) == []

    rerun = subprocess.run([*SPARSEPIPE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "tokenize: resumed with" in rerun.stderr  # a log, not a terminal
    assert list(private_tmp.glob("sparsepipe-*")) == []
