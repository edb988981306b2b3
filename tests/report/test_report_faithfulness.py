"""The faithfulness table: each circuit beside its random-init and task-twin controls, and the ablation table."""

from __future__ import annotations

import json

from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.result import CIRCUIT_PAGE, cell_name, write_result
from sparsepipe.workers.report.worker import run_report


def _result(folder, task, edges, reached, full=0.05, ablations=None, control=None):
    """A prune cell's artifact, written through the prune result schema."""
    folder.mkdir(parents=True)
    checkpoint = "random_init/pretrain/tiny" if control and control["kind"] == "random_init" else "pretrain/tiny"
    result = {
        "cell": cell_name(checkpoint, task),
        "checkpoint": checkpoint,
        "tuned_target": 0.15,
        "total_nodes": 500,
        "kept": {},
        "task": task,
        "nodes": edges // 2 + 1,
        "edges": edges,
        "reached_target": reached,
        "test_reached_target": reached,
        "target_loss": 0.15,
        "circuit_loss": 0.1 if reached else 0.5,
        "calibrated_loss": 0.0,
        "circuit_accuracy": 0.97,
        "calibrated_accuracy": 1.0,
        "logit_scale": 25.0,
        "full_model_loss": full,
        "inverse_loss": 0.7,
        "random_circuit_loss": 0.69,
        "test_pairs": 64,
        "loss_reduction": "mean",
        "ablation_losses": ablations or {},
        "control": control,
    }
    write_result(folder, result)
    (folder / CIRCUIT_PAGE).write_text("<html></html>")
    return folder


def of(kind: str) -> dict[str, str]:
    return {"kind": kind, "checkpoint": "pretrain/tiny", "task": "var_if"}


def test_the_report_sets_each_circuit_beside_its_controls(tmp_path):
    ablations = {
        "trained_under": "mean",
        **{
            a: {"circuit_loss": loss, "circuit_accuracy": 0.9, "inverse_loss": 0.6}
            for a, loss in (("mean", 0.1), ("zero", 0.4), ("resample", 0.2))
        },
    }
    inputs = {
        "pretrain/tiny:var_if": _result(tmp_path / "a", "var_if", 27, True, ablations=ablations),
        "pretrain/tiny:bracket_counting": _result(tmp_path / "b", "bracket_counting", 50, True),
        "random_init/pretrain/tiny:var_if": _result(
            tmp_path / "c", "var_if", 300, True, full=0.69, control=of("random_init")
        ),
        "pretrain/tiny:var_if__flipped": _result(
            tmp_path / "d", "var_if__flipped", 12, False, full=2.9, control=of("flipped")
        ),
        "pretrain/tiny:var_if__shuffled": _result(
            tmp_path / "e", "var_if__shuffled", 40, False, full=0.8, control=of("shuffled")
        ),
    }
    ctx = local_context(tmp_path / "out", inputs=inputs)
    run_report(ctx)
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    assert {(c["checkpoint"], c["task"], c["control"]) for c in summary["cells"]} >= {
        ("random_init/pretrain/tiny", "var_if", "random_init"),
        ("pretrain/tiny", "var_if__flipped", "flipped"),
    }
    # The headline compares trained models on real tasks: the controls stay out of it.
    assert set(summary["checkpoints"]) == {"pretrain/tiny"} and summary["checkpoints"]["pretrain/tiny"]["tasks"] == 2
    [row] = summary["faithfulness"]
    assert (row["checkpoint"], row["task"]) == ("pretrain/tiny", "var_if")
    assert row["circuit"]["edges"] == 27 and row["random_init"]["edges"] == 300
    assert row["flipped"]["test_reached_target"] is False and row["flipped"]["full_model_loss"] == 2.9
    assert row["controls_reaching_target"] == ["random_init"]
    assert ctx.metrics["controls_reaching_target"] == 1
    [ablation] = summary["ablations"]
    assert ablation["trained_under"] == "mean" and ablation["zero"]["circuit_loss"] == 0.4
    markdown = (ctx.out_dir / "summary.md").read_text()
    assert "| pretrain/tiny | var_if | 27 edges | 300 edges | not reached | 2.900 | not reached | 0.800 |" in markdown
    assert "| pretrain/tiny | var_if | mean | 0.100 | 0.400 | 0.200 |" in markdown
    index = (ctx.out_dir / "index.html").read_text()
    assert "<h2>Controls</h2>" in index and "One circuit, three ablations" in index
