"""The report stage on hand-made prune results."""

from __future__ import annotations

import json
import math

import pytest

from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.result import CIRCUIT_PAGE, cell_name, write_result
from sparsepipe.workers.report.worker import INTERVENTIONS_INPUT, run_report


def _prune_output(folder, edges, reached, task, checkpoint="pretrain/tiny"):
    """A prune cell's artifact as prune writes it: result.json through the schema, and the circuit page."""
    folder.mkdir(parents=True)
    result = {
        "cell": cell_name(checkpoint, task),
        "checkpoint": checkpoint,
        "task": task,
        "tuned_target": 0.15,
        "kept": {"0.mlp.post_act": list(range(edges // 2 + 1))},
        "nodes": edges // 2 + 1,
        "edges": edges,
        "reached_target": reached,
        "total_nodes": 500,
        "target_loss": 0.15,
        "circuit_loss": 0.1 if reached else 0.4,
        "calibrated_loss": 0.09 if reached else 0.35,
        "full_model_loss": 0.05,
        "inverse_loss": 0.7,
        "random_circuit_loss": 0.69,
        "test_pairs": 64,
        "loss_reduction": "mean",
        "selection_loss": 0.12,
        "test_reached_target": reached,
    }
    write_result(folder, result)
    (folder / CIRCUIT_PAGE).write_text(f"<html>{task}</html>")
    return folder


def test_report_tables_figure_and_index(tmp_path):
    inputs = {
        "pretrain/tiny:bracket_counting": _prune_output(tmp_path / "a", 10, True, "bracket_counting"),
        "pretrain/tiny:var_swap": _prune_output(tmp_path / "b", 1000, True, "var_swap"),
        "pretrain/tiny:if_equals": _prune_output(tmp_path / "c", 5, False, "if_equals"),
        "dense:bracket_counting": _prune_output(tmp_path / "d", 400, True, "bracket_counting", "dense"),
    }
    ctx = local_context(tmp_path / "out", inputs=inputs)
    run_report(ctx)
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    # The headline is over the tasks every checkpoint reached: dense has only bracket_counting.
    assert summary["checkpoints"]["pretrain/tiny"]["geomean_edges"] == pytest.approx(10.0)
    assert summary["checkpoints"]["pretrain/tiny"]["reached_target"] == 2
    assert summary["checkpoints"]["pretrain/tiny"]["common_tasks"] == 1
    assert summary["checkpoints"]["dense"]["geomean_edges"] == pytest.approx(400.0)
    assert (ctx.out_dir / "edges_by_task.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (ctx.out_dir / "index.html").read_text()
    assert "circuits/pretrain_tiny__var_swap.html" in index
    assert (ctx.out_dir / "circuits" / "dense__bracket_counting.html").read_text() == "<html>bracket_counting</html>"
    markdown = (ctx.out_dir / "summary.md").read_text()
    assert (
        "| pretrain/tiny | var_swap | 501 | 1000 | yes | 0.100 | – | 0.090 | 0.050 | 0.700 | 0.690 | 64 |" in markdown
    )
    assert "| binarized | calibrated | full model | inverse | random circuit | test pairs |" in markdown
    assert (
        "Losses on the test split (loss_reduction mean)" in markdown
        and "Losses on each task's held-out test pairs" in index
    )
    assert "<th>test pairs</th>" in index and "<td>64</td>" in index
    assert summary["cells"][0]["test_pairs"] == 64 and summary["cells"][0]["loss_reduction"] == "mean"
    assert ctx.metrics["cells"] == 4 and math.isclose(ctx.metrics["geomean_edges"]["dense"], 400.0)


def test_report_records_the_corpus_digest_and_its_environment(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    record = {"digest": "ab12", "documents": 3, "bytes": 900, "searched": [], "environment": {"python": "3.11.7"}}
    (tokens / "corpus.json").write_text(json.dumps(record))
    inputs = {"pretrain/tiny:var_swap": _prune_output(tmp_path / "a", 10, True, "var_swap"), "corpus": tokens}
    ctx = local_context(tmp_path / "out", inputs=inputs)
    run_report(ctx)
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    assert summary["corpus"] == record and ctx.metrics["corpus_digest"] == "ab12"
    assert [row["task"] for row in summary["cells"]] == ["var_swap"]  # the corpus input is not a prune cell
    assert "ab12" in (ctx.out_dir / "index.html").read_text()


def test_report_without_inputs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no pruned circuits"):
        run_report(local_context(tmp_path / "out"))


def test_report_shows_the_bridges_intervention_curves(tmp_path):
    bridged = tmp_path / "bridges" / "interventions"
    bridged.mkdir(parents=True)
    (bridged / "single_double_quote.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (bridged / "single_double_quote.json").write_text("{}")
    inputs = {
        "bridges/base:single_double_quote": _prune_output(
            tmp_path / "a", 10, True, "single_double_quote", "bridges/base"
        ),
        f"{INTERVENTIONS_INPUT}bridges/base": tmp_path / "bridges",
    }
    ctx = local_context(tmp_path / "out", inputs=inputs)
    run_report(ctx)
    assert (ctx.out_dir / "interventions" / "bridges_base" / "single_double_quote.json").exists()
    assert "interventions/bridges_base/single_double_quote.png" in (ctx.out_dir / "index.html").read_text()
    assert ctx.metrics["cells"] == 1


def test_report_reads_prune_results_through_the_schema(tmp_path):
    """A result.json without a schema field fails naming it (not a KeyError deep in a figure); the tuned target
    comes from the results, not from a guess."""
    folder = _prune_output(tmp_path / "a", 10, True, "bracket_counting")
    ctx = local_context(tmp_path / "out", inputs={"pretrain/tiny:bracket_counting": folder})
    run_report(ctx)
    cells = json.loads((ctx.out_dir / "summary.json").read_text())["cells"]
    assert [cell["tuned_target"] for cell in cells] == [0.15]

    result = json.loads((folder / "result.json").read_text())
    del result["tuned_target"]
    (folder / "result.json").write_text(json.dumps(result))
    with pytest.raises(ValueError, match="tuned_target"):
        run_report(local_context(tmp_path / "again", inputs={"pretrain/tiny:bracket_counting": folder}))


def test_cells_tuned_at_different_targets_are_not_averaged_together(tmp_path):
    inputs = {
        "pretrain/tiny:bracket_counting": _prune_output(tmp_path / "a", 10, True, "bracket_counting"),
        "dense:bracket_counting": _prune_output(tmp_path / "b", 40, True, "bracket_counting", "dense"),
    }
    result = json.loads((inputs["dense:bracket_counting"] / "result.json").read_text())
    write_result(inputs["dense:bracket_counting"], {**result, "tuned_target": 0.3})
    with pytest.raises(ValueError, match=r"different target losses \[0.15, 0.3\]"):
        run_report(local_context(tmp_path / "out", inputs=inputs))
