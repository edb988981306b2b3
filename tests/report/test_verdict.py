"""The verdict on hand-made circuits: each check's rule, "not measured" without evidence, the trusted-only headline."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.config import resolve_config
from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.result import CIRCUIT_PAGE, cell_name, write_result
from sparsepipe.workers.report.config import ReportConfig
from sparsepipe.workers.report.stage import report_cells
from sparsepipe.workers.report.verdict import CONTROL, FAIL, NOT_MEASURED, PASS, TRUSTED, control_of, judge
from sparsepipe.workers.report.worker import run_report
from sparsepipe.workers.stage import Cell


def _circuit(checkpoint="pretrain/a", task="t1", edges=10, **changes):
    """A circuit that passes every check of its own: the model performs, the circuit holds on test, is needed,
    and three mask seeds agree on its size."""
    row = {
        "checkpoint": checkpoint,
        "task": task,
        "nodes": edges,
        "edges": edges,
        "target_loss": 0.15,
        "reached_target": True,
        "test_reached_target": True,
        "full_model_loss": 0.05,
        "circuit_loss": 0.12,
        "inverse_loss": 0.9,
        "intervals": {"full_model_loss": [0.03, 0.08], "circuit_loss": [0.1, 0.14]},
        "seeds": [{"seed": s, "nodes": edges + s, "edges": edges + s, "circuit_loss": 0.12} for s in range(3)],
    }
    return {**row, **changes}


def _controls(checkpoint="pretrain/a", task="t1", reached=()):
    """The circuit's random-init, flipped and shuffled control cells; `reached` names those that reach the target."""
    cells = {
        "random_init": (f"random_init/{checkpoint}", task),
        "flipped": (checkpoint, f"{task}__flipped"),
        "shuffled": (checkpoint, f"{task}__shuffled"),
    }
    return [
        {
            "checkpoint": c,
            "task": t,
            "nodes": 500,
            "edges": 900,
            "target_loss": 0.15,
            "reached_target": True,  # the masks may find something on val; the checks read test
            "test_reached_target": role in reached,
            "circuit_loss": 0.1 if role in reached else 0.6,
            "full_model_loss": 0.7,
        }
        for role, (c, t) in cells.items()
    ]


def _judged(rows):
    return {f"{r['checkpoint']}:{r['task']}": r for r in judge(rows, ReportConfig())}


def test_a_circuit_with_every_check_passed_is_trusted_and_its_controls_are_evidence():
    rows = _judged([_circuit(), *_controls()])
    circuit = rows["pretrain/a:t1"]
    assert circuit["verdict"] == TRUSTED
    assert {name: check["status"] for name, check in circuit["checks"].items()} == {
        name: PASS
        for name in ("model_performs", "within_model", "holds_on_test", "controls_clear", "necessary", "stable")
    }
    assert circuit["checks"]["model_performs"]["full_model_loss_interval"] == [0.03, 0.08]
    assert circuit["checks"]["necessary"]["ablation_cost"] == pytest.approx(0.85)
    assert circuit["checks"]["stable"]["edges"] == [10, 12]
    flipped = rows["pretrain/a:t1__flipped"]
    assert flipped["verdict"] == CONTROL and flipped["control_for"] == "pretrain/a:t1" and flipped["checks"] == {}
    assert control_of("random_init/dense", "t1") == "dense:t1" and control_of("dense", "t1") is None


def test_a_circuit_better_than_its_model_exceeds_it():
    circuit = _judged([_circuit(full_model_loss=0.6, circuit_loss=0.1), *_controls()])["pretrain/a:t1"]
    within = circuit["checks"]["within_model"]
    assert within["status"] == FAIL and within["exceeds_model"] is True
    assert within["circuit_minus_model"] == pytest.approx(-0.5)
    # 0.6 is above the target: the model does not perform the task either
    assert circuit["verdict"] == ["model_performs", "within_model"]
    # within the margin (0.1 by default) is not exceeding
    near = _judged([_circuit(full_model_loss=0.2, circuit_loss=0.11), *_controls()])["pretrain/a:t1"]
    assert near["checks"]["within_model"]["status"] == PASS


@pytest.mark.parametrize("role, leak", [("flipped", False), ("random_init", False), ("shuffled", True)])
def test_a_control_that_reaches_the_target_on_test_makes_the_circuit_untrusted(role, leak):
    circuit = _judged([_circuit(), *_controls(reached=(role,))])["pretrain/a:t1"]
    assert circuit["verdict"] == ["controls_clear"]
    controls = circuit["checks"]["controls_clear"]
    assert controls["status"] == FAIL and controls["reached_target"] == [role]
    assert controls.get("leak", False) is leak


def test_a_control_that_misses_the_target_by_less_than_its_interval_is_not_cleared():
    # Measured in the tiny run: var_if's flipped twin at 0.154 on test, 95% interval [0.134, 0.174], target 0.15.
    near = _controls()
    near[1].update(circuit_loss=0.154, intervals={"circuit_loss": [0.134, 0.174]})
    circuit = _judged([_circuit(), *near])["pretrain/a:t1"]
    controls = circuit["checks"]["controls_clear"]
    assert circuit["verdict"] == ["controls_clear"] and controls["reached_target"] == ["flipped"]
    assert controls["flipped"]["test_reached_target"] is False
    assert controls["flipped"]["within_interval_of_target"] is True
    # a miss beyond its interval clears
    far = _controls()
    far[1].update(circuit_loss=0.2, intervals={"circuit_loss": [0.17, 0.23]})
    assert _judged([_circuit(), *far])["pretrain/a:t1"]["verdict"] == TRUSTED


def test_absent_evidence_is_not_measured_and_not_trusted():
    single_seed = _circuit(seeds=[{"seed": 0, "nodes": 10, "edges": 10}])
    circuit = _judged([single_seed])["pretrain/a:t1"]  # no control cells, one mask seed
    assert circuit["checks"]["controls_clear"]["status"] == NOT_MEASURED
    assert circuit["checks"]["controls_clear"]["random_init"]["status"] == "not run"
    assert circuit["checks"]["stable"]["status"] == NOT_MEASURED
    assert circuit["verdict"] == ["controls_clear", "stable"]
    # a result from before intervals, seeds and inverse losses (a failed cell reads the same)
    bare = {"checkpoint": "dense", "task": "t1", "nodes": 0, "edges": 0, "reached_target": False}
    assert _judged([bare])["dense:t1"]["verdict"] == [
        "model_performs",
        "within_model",
        "holds_on_test",
        "controls_clear",
        "necessary",
        "stable",
    ]


def test_unneeded_or_unstable_circuits_fail():
    unneeded = _judged([_circuit(inverse_loss=0.2), *_controls()])["pretrain/a:t1"]
    assert unneeded["verdict"] == ["necessary"]  # ablating it costs 0.15 < 0.3
    spread = {"nodes": {"median": 10, "min": 5, "max": 30}, "edges": {"median": 10, "min": 8, "max": 9}}
    unstable = _judged([_circuit(seed_spread=spread), *_controls()])["pretrain/a:t1"]
    assert unstable["verdict"] == ["stable"] and unstable["checks"]["stable"]["max_over_min"]["nodes"] == 6
    on_val_only = _judged([_circuit(test_reached_target=False, circuit_loss=0.2), *_controls()])["pretrain/a:t1"]
    assert on_val_only["verdict"] == ["holds_on_test"]


def _write_cells(rows, root):
    """Each row as a prune cell's artifact, written through the result schema as prune writes it."""
    inputs = {}
    for row in rows:
        name = cell_name(row["checkpoint"], row["task"])
        folder = root / name.replace("/", "_").replace(":", "__")
        folder.mkdir(parents=True)
        schema = {"cell": name, "tuned_target": 0.15, "loss_reduction": "mean", "total_nodes": 1000}
        schema["kept"] = {"0.mlp.post_act": list(range(row["nodes"]))}
        write_result(folder, {**schema, **row})
        (folder / CIRCUIT_PAGE).write_text(f"<html><body><h1>{row['task']}</h1></body></html>")
        inputs[name] = folder
    return inputs


def test_fig2_ratio_and_headline_count_trusted_circuits_only(tmp_path):
    """t1 is trusted on both models; the sparse t2 circuit is not (its flipped twin reaches the target). With t2,
    dense/sparse would be (100*100)^.5 / (10*1000)^.5 = 1; over the trusted circuits (t1 only) it is 100 / 10 = 10.
    (The all-circuit figures also hold the control cells, whose handling is the figures' own.)"""
    sparse, dense = {"val_loss": 3.0, "sparse": True}, {"val_loss": 3.02, "sparse": False}  # a matched pair
    rows = [
        _circuit("pretrain/a", "t1", 10, model_info=sparse),
        _circuit("pretrain/a", "t2", 1000, model_info=sparse),
        _circuit("dense", "t1", 100, model_info=dense),
        _circuit("dense", "t2", 100, model_info=dense),
        *_controls("pretrain/a", "t1"),
        *_controls("pretrain/a", "t2", reached=("flipped",)),
        *_controls("dense", "t1"),
        *_controls("dense", "t2"),
    ]
    ctx = local_context(tmp_path / "out", inputs=_write_cells(rows, tmp_path / "in"))
    run_report(ctx)
    assert ctx.metrics["trusted_circuits"] == 3
    assert ctx.metrics["trusted_dense_over_sparse_edges"]["pretrain/a"]["0.15"] == pytest.approx(10)
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    verdict = summary["verdict"]
    assert verdict["trusted_circuits"] == 3 and verdict["circuits"] == 4 and verdict["controls"] == 12
    assert verdict["checkpoints"]["pretrain/a"]["geomean_edges"] == pytest.approx(10)
    assert verdict["checkpoints"]["pretrain/a"]["common_trusted_tasks"] == 1
    assert "not the headline" in verdict["all_circuits"]["label"]
    assert verdict["untrusted"] == [{"cell": "pretrain/a:t2", "failed": {"controls_clear": FAIL}}]
    assert all("verdict" in cell and "checks" in cell for cell in summary["cells"])
    assert (ctx.out_dir / "trusted" / "fig2_edges_vs_target.png").read_bytes()[:4] == b"\x89PNG"
    index = (ctx.out_dir / "index.html").read_text()
    assert index.index("Verdict: 3 of 4 circuits are trusted") < index.index("<h2>All circuits</h2>")
    assert "trusted/fig2_edges_vs_target.png" in index and "not the headline" in index
    markdown = (ctx.out_dir / "summary.md").read_text()
    assert markdown.startswith("## Verdict: 3 of 4 circuits are trusted")
    assert "| pretrain/a | t2 | controls_clear FAIL (" in markdown


def test_circuit_pages_carry_the_badge_and_say_when_a_circuit_exceeds_its_model(tmp_path):
    rows = [_circuit("pretrain/a", "t1", full_model_loss=0.677, circuit_loss=0.114), _circuit("dense", "t1")]
    ctx = local_context(tmp_path / "out", inputs=_write_cells(rows, tmp_path / "in"))
    run_report(ctx)
    sparse = (ctx.out_dir / "circuits" / "pretrain_a__t1.html").read_text()
    assert sparse.startswith("<html><body><div class='verdict-box'") and sparse.endswith("<h1>t1</h1></body></html>")
    assert "not trusted" in sparse and "exceeds its model" in sparse and "finding about the ablation" in sparse
    dense = (ctx.out_dir / "circuits" / "dense__t1.html").read_text()
    assert "exceeds its model" not in dense and "controls_clear (not measured)" in dense
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    assert summary["verdict"]["trusted_circuits"] == 0 and ctx.metrics["trusted_dense_over_sparse_edges"] == {}
    assert not (ctx.out_dir / "trusted").exists()
    assert "No trusted circuit" in (ctx.out_dir / "index.html").read_text()


@pytest.mark.parametrize(
    "key, value",
    [("report.exceed_margin", "-0.1"), ("report.necessary_margin", "-1"), ("report.stable_factor", "0.5")],
)
def test_bad_verdict_settings_exit_2_naming_the_key(key, value, tmp_path):
    result = CliRunner().invoke(app, ["plan", "--store", str(tmp_path / "s"), "--set", f"{key}={value}"])
    assert result.exit_code == 2
    assert key in result.output


def test_the_report_cell_carries_the_verdict_settings():
    """A changed margin is in the report cell's params (so it re-keys the report), and the verdict reads it."""
    config = resolve_config("smoke", assignments=["report.exceed_margin=0.2"], environ={})
    (cell,) = report_cells(config, {"prune": [Cell("prune", "pretrain/a:t1", {})]})
    assert cell.params["report"] == {"exceed_margin": 0.2, "necessary_margin": 0.3, "stable_factor": 2.0}
    rows = [_circuit(full_model_loss=0.3, circuit_loss=0.14), *_controls()]
    assert _judged(rows)["pretrain/a:t1"]["checks"]["within_model"]["status"] == FAIL  # 0.16 under, margin 0.1
    wide = {f"{r['checkpoint']}:{r['task']}": r for r in judge(rows, ReportConfig(**cell.params["report"]))}
    assert wide["pretrain/a:t1"]["checks"]["within_model"]["status"] == PASS
