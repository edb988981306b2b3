"""Batch pruning through the real CLI: every task of every checkpoint, each cell CARBS-tuned (smoke preset)."""

from __future__ import annotations

import json

import pytest

from sparsepipe.tasks import task_names

pytestmark = pytest.mark.slow

CELL_FILES = {"circuit.json", "circuit.html", "result.json", "loss_vs_k.png", "trials.jsonl", "tuning.png"}


def test_batch_pruning_lists_every_task_of_every_checkpoint(sparsepipe, tmp_path):
    result = sparsepipe(
        "plan", "prune", "--preset", "smoke", "--tasks", "all", "--checkpoints", "all", "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cells = [c["cell"] for c in json.loads(result.stdout)["cells"] if c["stage"] == "prune"]
    assert sorted(cells) == sorted(
        f"{checkpoint}:{task}"
        for checkpoint in ("pretrain/smoke", "dense", "matched_dense/smoke", "bridges/smoke")
        for task in task_names()
    )


def test_batch_pruning_of_every_task_end_to_end(sparsepipe, tmp_path):
    # The dense and bridged checkpoints are left out (bridges need dense) to cut the run; the selection of all
    # three is checked above.
    result = sparsepipe(
        "run",
        "prune",
        "--preset",
        "smoke",
        "--tasks",
        "all",
        "--set",
        "dense.enabled=false",
        "--set",
        "bridges.enabled=false",
        "--json",
        cwd=tmp_path,
    )
    report = json.loads(result.stdout)
    prune = {c["cell"]: c for c in report["cells"] if c["stage"] == "prune"}
    assert sorted(prune) == sorted(f"pretrain/smoke:{task}" for task in task_names())

    failed = {cell: c["error"] for cell, c in prune.items() if c["error"] is not None}
    assert not failed and result.returncode == 0, (failed, result.stderr[-3000:])

    for cell, outcome in prune.items():
        metrics = outcome["metrics"]
        assert metrics["iterations"] == 1 and metrics["trials"] == len(metrics["trial_log"]) == 2, cell
        assert {"nodes", "edges", "circuit_loss", "reached_target", "best_iteration", "failed_trials"} <= set(metrics)
        assert all(entry["node"] for entry in metrics["trial_log"])  # the trials ran as Ray tasks
    committed = [path.parent for path in (tmp_path / "artifacts" / "prune").glob("*/attempts/*/trials.jsonl")]
    assert len(committed) == len(prune)
    assert all(CELL_FILES <= {p.name for p in folder.iterdir()} for folder in committed)
