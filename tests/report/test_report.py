"""The report stage on hand-made prune results."""

from __future__ import annotations

import json
import math

import pytest

from sparsepipe.workers.context import local_context
from sparsepipe.workers.report.worker import run_report


def _prune_output(folder, edges, reached, task):
    folder.mkdir(parents=True)
    result = {
        "task": task,
        "nodes": edges // 2 + 1,
        "edges": edges,
        "reached_target": reached,
        "total_nodes": 500,
        "target_loss": 0.15,
        "circuit_loss": 0.1 if reached else 0.4,
        "full_model_loss": 0.05,
        "inverse_loss": 0.7,
        "random_circuit_loss": 0.69,
    }
    (folder / "result.json").write_text(json.dumps(result))
    (folder / "circuit.html").write_text(f"<html>{task}</html>")
    return folder


def test_report_tables_figure_and_index(tmp_path):
    inputs = {
        "pretrain/tiny:bracket_counting": _prune_output(tmp_path / "a", 10, True, "bracket_counting"),
        "pretrain/tiny:var_swap": _prune_output(tmp_path / "b", 1000, True, "var_swap"),
        "pretrain/tiny:if_equals": _prune_output(tmp_path / "c", 5, False, "if_equals"),
        "dense:bracket_counting": _prune_output(tmp_path / "d", 400, True, "bracket_counting"),
    }
    ctx = local_context(tmp_path / "out", inputs=inputs)
    run_report(ctx)
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    # The headline skips tasks that missed the target: geomean(10, 1000) = 100.
    assert summary["checkpoints"]["pretrain/tiny"]["geomean_edges"] == pytest.approx(100.0)
    assert summary["checkpoints"]["pretrain/tiny"]["reached_target"] == 2
    assert summary["checkpoints"]["dense"]["geomean_edges"] == pytest.approx(400.0)
    assert (ctx.out_dir / "edges_by_task.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (ctx.out_dir / "index.html").read_text()
    assert "circuits/pretrain_tiny__var_swap.html" in index
    assert (ctx.out_dir / "circuits" / "dense__bracket_counting.html").read_text() == "<html>bracket_counting</html>"
    assert "| pretrain/tiny | var_swap | 501 | 1000 | yes |" in (ctx.out_dir / "summary.md").read_text()
    assert ctx.metrics["cells"] == 4 and math.isclose(ctx.metrics["geomean_edges"]["dense"], 400.0)


def test_report_without_inputs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no pruned circuits"):
        run_report(local_context(tmp_path / "out"))
