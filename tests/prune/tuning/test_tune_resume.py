"""A tuned cell whose driver is SIGKILLed mid-cell resumes without re-running finished trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tune_toys import SETTINGS, TASK

from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.config import TuneConfig
from sparsepipe.workers.prune.stage import run_prune_cell
from sparsepipe.workers.prune.tuning import STATE_FILE, TRIALS_PREFIX

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("tuning_driver.py")
TUNE = TuneConfig(iterations=3, trials_per_iteration=2, cpus_per_trial=1)


def _completed_iterations(progress: Path) -> int:
    try:
        return json.loads((progress / STATE_FILE).read_text())["completed_iterations"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _saved_trials(progress: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in (progress / TRIALS_PREFIX).glob("*.json")}


def test_killed_driver_resumes_without_repeating_finished_trials(cell_inputs, tmp_path):
    progress = tmp_path / "progress"
    params = {"task": TASK, "prune": SETTINGS.model_dump(mode="json"), "tune": TUNE.model_dump(mode="json")}
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "inputs": {k: str(v) for k, v in cell_inputs.items()},
                "out": str(tmp_path / "killed"),
                "progress": str(progress),
                "params": params,
            }
        )
    )
    driver = subprocess.Popen(
        [sys.executable, str(DRIVER), str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None and _completed_iterations(progress) < 1:
        time.sleep(0.01)
    assert driver.poll() is None, f"the driver ended before it could be killed: {driver.stderr.read().decode()[-2000:]}"
    os.killpg(driver.pid, signal.SIGKILL)
    killed_at = time.time()
    driver.wait()
    before = _saved_trials(progress)
    assert 1 <= _completed_iterations(progress) < TUNE.iterations and len(before) >= TUNE.trials_per_iteration

    ctx = local_context(tmp_path / "resumed", inputs=cell_inputs, progress_dir=progress)
    run_prune_cell(ctx, params)

    total = TUNE.iterations * TUNE.trials_per_iteration
    after = {t["id"]: t for t in map(json.loads, (tmp_path / "resumed" / "trials.jsonl").read_text().splitlines())}
    assert len(after) == ctx.metrics["trials"] == total
    assert ctx.metrics["trials_resumed"] == len(before)
    assert all(after[trial_id] == record for trial_id, record in before.items())  # same start and end: not run again
    assert all(record["start"] > killed_at for trial_id, record in after.items() if trial_id not in before)
    carbs = json.loads((progress / STATE_FILE).read_text())["carbs"]
    assert sorted(o["suggestion_id"] for o in carbs["observations"]) == sorted(after) and not carbs["outstanding"]
