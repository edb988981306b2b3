"""The whole pipeline through the CLI on the smoke preset: every stage, its manifest metrics, then all HIT."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

TRAIN_METRICS = {"final_val_loss", "bigram_val_loss", "target_l0", "l0_by_param", "dead_neurons", "tokens_seen"}
PRUNE_METRICS = {
    "nodes",
    "edges",
    "target_loss",
    "circuit_loss",
    "full_model_loss",
    "inverse_loss",
    "random_circuit_loss",
    "reached_target",
}


def test_run_full_smoke_with_fixed_pruning_hyperparameters(sparsepipe, tmp_path):
    result = sparsepipe(
        "run", "full", "--preset", "smoke", "--set", "tune.enabled=false", "--json", cwd=tmp_path, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    cells = {(c["stage"], c["cell"]): c for c in json.loads(result.stdout)["cells"]}
    assert {stage for stage, _ in cells} == {
        "tokenize",
        "pretrain",
        "dense",
        "matched_dense",
        "bridges",
        "random_init",
        "mean_cache",
        "prune",
        "interventions",
        "report",
    }
    for key in (("pretrain", "smoke"), ("dense", ""), ("bridges", "smoke")):
        assert TRAIN_METRICS <= set(cells[key]["metrics"]), key
    assert cells[("pretrain", "smoke")]["metrics"]["target_l0"] == 0.25
    assert cells[("dense", "")]["metrics"]["l0_by_param"]["blocks.0.mlp.c_fc.weight"] == 1.0
    sparse_fc = cells[("pretrain", "smoke")]["metrics"]["l0_by_param"]["blocks.0.mlp.c_fc.weight"]
    assert sparse_fc == pytest.approx(0.25, abs=0.01)
    prune_cells = [c for (stage, _), c in cells.items() if stage == "prune"]
    # 4 checkpoints (pretrain, dense, matched_dense, bridges) x 2 smoke tasks, and the controls on
    # single_double_quote: its flipped and shuffled twins on the 4 checkpoints, the random-init twins of pretrain,
    # dense and matched_dense.
    assert len(prune_cells) == 8 + 8 + 3
    for cell in prune_cells:
        assert PRUNE_METRICS <= set(cell["metrics"]), cell["cell"]
        assert set(cell["metrics"]["ablation_losses"]) == {"trained_under", "mean", "zero", "resample"}, cell["cell"]
    report_dir = next((tmp_path / "artifacts" / "report").glob("*/attempts/*"))
    assert {"index.html", "summary.json", "summary.md", "edges_by_task.png"} <= {p.name for p in report_dir.iterdir()}
    assert len(list((report_dir / "circuits").iterdir())) == 19
    summary = json.loads((report_dir / "summary.json").read_text())
    assert {"random_init/pretrain/smoke", "random_init/dense", "random_init/matched_dense/smoke"} <= {
        c["checkpoint"] for c in summary["cells"]
    }
    assert {"single_double_quote__flipped", "single_double_quote__shuffled"} <= {c["task"] for c in summary["cells"]}
    faithfulness = {(row["checkpoint"], row["task"]): row for row in summary["faithfulness"]}
    trained = {c["checkpoint"] for c in summary["cells"] if not c["control"]}
    assert len(trained) == 4 and set(faithfulness) == {(c, "single_double_quote") for c in trained}
    assert faithfulness[("dense", "single_double_quote")]["random_init"] is not None
    assert all(row["flipped"] and row["shuffled"] for row in faithfulness.values())
    assert len(summary["ablations"]) == 19
    # every circuit's verdict and checks (controls are evidence: verdict "control"), and a headline that says how
    # many trusted circuits it counts
    assert all({"verdict", "checks"} <= set(cell) for cell in summary["cells"])
    assert {c["verdict"] for c in summary["cells"] if c["control"]} == {"control"}
    assert summary["verdict"]["circuits"] == 8 and "trusted_circuits" in summary["verdict"]
    assert cells[("report", "")]["metrics"]["trusted_circuits"] == summary["verdict"]["trusted_circuits"]
    assert "circuits are trusted" in (report_dir / "index.html").read_text()
    assert {"nmse_d2s_sum", "kl_s2d_sum", "dense_val_loss", "interventions"} <= set(
        cells[("bridges", "smoke")]["metrics"]
    )
    steered = [c for (stage, _), c in cells.items() if stage == "interventions"]
    assert steered and all(c["cell"].startswith("bridges/smoke:") for c in steered)
    for cell in steered:  # a curve through the circuit's top read node, or the reason there is none
        assert "node" in cell["metrics"] or "skipped" in cell["metrics"], cell

    again = sparsepipe("run", "full", "--preset", "smoke", "--set", "tune.enabled=false", "--json", cwd=tmp_path)
    report = json.loads(again.stdout)
    assert again.returncode == 0 and not report["ray_started"]
    assert {c["status"] for c in report["cells"]} == {"HIT"}
