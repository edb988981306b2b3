"""An overnight batch survives its worst cell (issue 26), through the real CLI on the smoke preset.

One smoke batch prunes the smoke models (sparse, dense, bridges) on one task with a target sweep from below
the full model's loss to above the fully ablated model's, while a fault is injected into one prune cell
(fault_injection/sitecustomize.py: an error raised in that cell only, in the Ray worker). Every other cell
commits, the report is built and names the failed cell, the traceback is found in the store by
`sparsepipe logs`; the rerun without the fault computes only that cell and the report, and every circuit of
the sweep, degenerate or not, is a result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FAULTS = Path(__file__).parent / "fault_injection"
TASK = "single_double_quote"
FAILED = f"dense:{TASK}"
TIGHT, LOOSE = 1e-4, 1e4  # below every smoke model's task loss, above every ablated one's


def _cells(result) -> dict[tuple[str, str], dict]:
    return {(c["stage"], c["cell"]): c for c in json.loads(result.stdout)["cells"]}


def _report_summary(store: Path, key: str) -> dict:
    (attempt,) = (store / "report" / key / "attempts").iterdir()
    return json.loads((attempt / "summary.json").read_text())


def test_a_failed_cell_leaves_a_report_and_a_traceback_and_the_rerun_computes_only_it(sparsepipe, tmp_path, ray_tmpdir):
    store = tmp_path / "store"
    command = (
        *("run", "full", "--preset", "smoke", "--tasks", TASK, "--store", str(store), "--json"),
        *("--set", "tune.enabled=false", "--set", f"prune.targets=[{TIGHT}, {LOOSE}]"),
    )
    env = {"TMPDIR": str(ray_tmpdir)}
    python_path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH")) if p)
    faulty = {**env, "SPARSEPIPE_TEST_FAULT": FAILED, "PYTHONPATH": python_path}

    first = sparsepipe(*command, cwd=tmp_path, env=faulty, timeout=900)
    assert first.returncode == 3, first.stderr[-4000:]
    cells = _cells(first)
    failed = cells[("prune", FAILED)]
    assert failed["error"] == f"InjectedFault: fault injected into prune/{FAILED} by the test (SPARSEPIPE_TEST_FAULT)"
    assert failed["where"].startswith("tests/pipeline/fault_injection/sitecustomize.py:")
    assert failed["failure_record"].endswith("/progress/0000/failure.json")
    # Every other cell committed, the report too: it names the failed cell.
    assert {ref for ref, c in cells.items() if c["key"] is None or c["error"] or c["skipped_because"]} == {
        ("prune", FAILED)
    }
    summary = _report_summary(store, cells[("report", "")]["key"])
    assert summary["failed_cells"] == [{"checkpoint": "dense", "task": TASK, "error": failed["error"]}]
    pruned = [ref for ref in cells if ref[0] == "prune"]  # one per smoke checkpoint
    assert len(summary["cells"]) == len(pruned) - 1
    assert f"failed prune/{FAILED}: InjectedFault" in first.stderr
    assert f"`sparsepipe logs prune/{FAILED}`" in first.stderr and "in run_prune_cell" in first.stderr  # the log

    listed = sparsepipe("status", "--failed", "--json", "--store", str(store), cwd=tmp_path)
    assert [(f["stage"], f["cell"]) for f in json.loads(listed.stdout)["failed"]] == [("prune", FAILED)]
    logs = sparsepipe("logs", f"prune/{FAILED}", "--store", str(store), cwd=tmp_path)
    assert logs.returncode == 0 and "in execute_unit" in logs.stdout and "in run_prune_cell" in logs.stdout
    assert "InjectedFault: fault injected" in logs.stdout.strip().splitlines()[-1]

    second = sparsepipe(*command, cwd=tmp_path, env=env, timeout=900)
    assert second.returncode == 0, second.stderr[-4000:]
    cells = _cells(second)
    assert {ref for ref, c in cells.items() if c["status"] != "HIT"} == {("prune", FAILED), ("report", "")}
    summary = _report_summary(store, cells[("report", "")]["key"])
    assert summary["failed_cells"] == [] and len(summary["cells"]) == len(pruned)
    listed = sparsepipe("status", "--failed", "--json", "--store", str(store), cwd=tmp_path)
    assert json.loads(listed.stdout)["failed"] == []

    # The sweep: below the full model's loss nothing is reached, above the ablated model's the empty circuit is.
    for (stage, _), cell in cells.items():
        if stage != "prune":
            continue
        metrics = cell["metrics"]
        tight, loose = metrics["sweep"][0], metrics["sweep"][-1]
        assert (tight["target_loss"], loose["target_loss"]) == (TIGHT, LOOSE)
        assert metrics["full_model_loss"] > TIGHT and not tight["reached_target"] and tight["circuit"] == "not reached"
        assert loose["circuit"] == "empty" and loose["nodes"] == 0 and loose["reached_target"]
        if cell["cell"].startswith("random_init/") or "__" in cell["cell"]:  # a control: binarization is off
            assert loose["binarized_loss"] is None
        else:
            assert loose["binarized_loss"] == pytest.approx(loose["circuit_loss"])
