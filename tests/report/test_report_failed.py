"""The report is built from what succeeded (issue 26): failed prune cells are rows "failed: <error>"."""

from __future__ import annotations

import json

from test_report import _prune_output

from sparsepipe.workers.context import local_context
from sparsepipe.workers.report.worker import run_report

ERROR = "RuntimeError: element 0 of tensors does not require grad"


def test_failed_cells_are_rows_and_left_out_of_the_headline_and_figures(tmp_path):
    inputs = {
        "pretrain/tiny:bracket_counting": _prune_output(tmp_path / "a", 10, True, "bracket_counting"),
        "dense:var_swap": _prune_output(tmp_path / "b", 400, True, "var_swap", checkpoint="dense"),
    }
    failed = {"dense:bracket_counting": ERROR, "bridges/tiny:var_swap": "upstream bridges/tiny failed"}
    ctx = local_context(tmp_path / "out", inputs=inputs, failed_inputs=failed)
    run_report(ctx)

    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    assert [(c["checkpoint"], c["task"]) for c in summary["cells"]] == [
        ("dense", "var_swap"),
        ("pretrain/tiny", "bracket_counting"),
    ]
    assert summary["failed_cells"] == [
        {"checkpoint": "bridges/tiny", "task": "var_swap", "error": "upstream bridges/tiny failed"},
        {"checkpoint": "dense", "task": "bracket_counting", "error": ERROR},
    ]
    headline = summary["checkpoints"]
    assert headline["dense"]["failed"] == 1 and headline["dense"]["tasks"] == 1
    assert headline["bridges/tiny"] == {
        "tasks": 0,
        "reached_target": 0,
        "common_tasks": 0,
        "geomean_edges": None,
        "failed": 1,
    }
    markdown = (ctx.out_dir / "summary.md").read_text()
    assert f"| dense | bracket_counting | failed: {ERROR} |" in markdown
    assert "2 of 4 cells failed and are missing from the headline and every figure" in markdown
    index = (ctx.out_dir / "index.html").read_text()
    assert f"failed: {ERROR}" in index and "2 of 4 cells failed" in index
    # The figures count only the cells that committed.
    plotted = json.loads((ctx.out_dir / "edges_by_task.json").read_text())
    assert sorted((r["checkpoint"], r["task"]) for r in plotted) == [
        ("dense", "var_swap"),
        ("pretrain/tiny", "bracket_counting"),
    ]
    assert sorted(p.name for p in (ctx.out_dir / "circuits").iterdir()) == [
        "dense__var_swap.html",
        "pretrain_tiny__bracket_counting.html",
    ]
    assert ctx.metrics["cells"] == 2 and ctx.metrics["failed_cells"] == [
        "bridges/tiny:var_swap",
        "dense:bracket_counting",
    ]


def test_a_report_of_failures_only_still_lists_every_cell(tmp_path):
    ctx = local_context(tmp_path / "out", failed_inputs={"dense:var_swap": ERROR})
    run_report(ctx)
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    assert summary["cells"] == [] and summary["failed_cells"][0]["error"] == ERROR
    index = (ctx.out_dir / "index.html").read_text()
    assert "No cell committed" in index and "edges_by_task.png" not in index
    assert not (ctx.out_dir / "edges_by_task.png").exists()


def test_a_degenerate_circuit_is_named_in_the_tables(tmp_path):
    folder = _prune_output(tmp_path / "a", 0, True, "var_swap", checkpoint="dense")
    result = json.loads((folder / "result.json").read_text())
    (folder / "result.json").write_text(json.dumps({**result, "nodes": 0, "circuit": "empty"}))
    ctx = local_context(tmp_path / "out", inputs={"dense:var_swap": folder})
    run_report(ctx)
    assert "| dense | var_swap | 0 | 0 | yes (empty) |" in (ctx.out_dir / "summary.md").read_text()
    assert "<td>yes (empty)</td>" in (ctx.out_dir / "index.html").read_text()
    assert json.loads((ctx.out_dir / "summary.json").read_text())["cells"][0]["circuit"] == "empty"
