"""The report's comparisons (paper Fig. 2, Fig. 3, App. C) on hand-made rows: same task set, ratio, pairing, lr."""

from __future__ import annotations

import json

import pytest

from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.result import CIRCUIT_PAGE, cell_name, write_result
from sparsepipe.workers.report.figures import (
    best_of_lr_groups,
    binarization_data,
    fig2_data,
    fig3_data,
    geometric_mean,
    nearest_dense,
)
from sparsepipe.workers.report.worker import run_report

TARGETS = (0.1, 0.3)


def _info(val_loss, sparse=True, d_model=64, l0=0.25, lr=1e-2, group=None):
    return {
        "val_loss": val_loss,
        "sparse": sparse,
        "d_model": d_model,
        "target_l0": l0 if sparse else 1.0,
        "lr": lr,
        "lr_group": group,
        "nonzero_matrix_params": 1000,
        "matrix_params": 4000,
    }


def _row(checkpoint, task, edges, info, missed=()):
    """A cell whose circuit at target t has edges[t]; targets in `missed` were not reached."""
    sweep = [
        {
            "target_loss": t,
            "edges": edges[t],
            "nodes": edges[t],
            "reached_target": t not in missed,
            "circuit_loss": t,
            "binarized_loss": 2 * t,
        }
        for t in TARGETS
    ]
    main = sweep[0]
    return {
        "checkpoint": checkpoint,
        "task": task,
        "sweep": sweep,
        "model_info": info,
        "tuned_target": main["target_loss"],
        **main,
    }


def _rows():
    sparse, dense_near, dense_far = _info(3.0), _info(3.1, sparse=False), _info(2.0, sparse=False, d_model=256)
    return [
        _row("pretrain/a", "t1", {0.1: 10, 0.3: 5}, sparse),
        _row("pretrain/a", "t2", {0.1: 40, 0.3: 20}, sparse),
        # t3 is missed by the sparse model at 0.1: it drops out for every model at 0.1.
        _row("pretrain/a", "t3", {0.1: 999, 0.3: 2}, sparse, missed=(0.1,)),
        _row("dense/small", "t1", {0.1: 160, 0.3: 80}, dense_near),
        _row("dense/small", "t2", {0.1: 640, 0.3: 80}, dense_near),
        _row("dense/small", "t3", {0.1: 7, 0.3: 8}, dense_near),
        _row("dense/big", "t1", {0.1: 1, 0.3: 1}, dense_far),
        _row("dense/big", "t2", {0.1: 1, 0.3: 1}, dense_far),
        _row("dense/big", "t3", {0.1: 1, 0.3: 1}, dense_far),
    ]


def test_geometric_mean():
    assert geometric_mean([10, 1000]) == pytest.approx(100)
    assert geometric_mean([0, 4]) == pytest.approx(2)  # an empty circuit counts as one edge
    assert geometric_mean([]) is None


def test_same_task_set_ratio_and_nearest_loss_pairing():
    data = fig2_data(_rows())
    at = {(p["checkpoint"], p["target_loss"]): p for p in data["points"]}
    # At 0.1 only t1 and t2 count, for every model: geomean(10, 40) = 20, geomean(160, 640) = 320.
    assert at["pretrain/a", 0.1]["tasks"] == at["dense/small", 0.1]["tasks"] == 2
    assert at["pretrain/a", 0.1]["task_names"] == ["t1", "t2"]
    assert at["pretrain/a", 0.1]["geomean_edges"] == pytest.approx(20)
    assert at["dense/small", 0.1]["geomean_edges"] == pytest.approx(320)
    assert at["pretrain/a", 0.3]["tasks"] == 3
    # The sparse model (val loss 3.0) pairs with dense/small (3.1), not dense/big (2.0).
    assert data["pairs"] == [{"sparse": "pretrain/a", "dense": "dense/small", "val_loss_gap": pytest.approx(0.1)}]
    ratios = {r["target_loss"]: r["dense_over_sparse_edges"] for r in data["ratios"]}
    assert ratios[0.1] == pytest.approx(16)
    assert ratios[0.3] == pytest.approx(geometric_mean([80, 80, 8]) / geometric_mean([5, 20, 2]))


def test_nearest_dense_without_losses():
    infos = {"s": {"val_loss": None}, "d": {"val_loss": 1.0}}
    assert nearest_dense(infos, "s", ["d"]) == ("d", None)  # the only dense model, gap unknown
    assert nearest_dense({**infos, "e": {}}, "s", ["d", "e"]) == (None, None)


def test_lr_sweep_keeps_the_best_val_loss_of_each_group():
    infos = {
        "pretrain/a_lr1": _info(3.2, lr=1e-3, group="g"),
        "pretrain/a_lr2": _info(3.0, lr=2e-3, group="g"),
        "pretrain/a_lr4": _info(3.5, lr=4e-3, group="g"),
        "pretrain/b": _info(2.9, group="h"),
        "dense": _info(None, sparse=False),
    }
    assert best_of_lr_groups(infos) == ["dense", "pretrain/a_lr2", "pretrain/b"]
    rows = [_row(c, "t1", {0.1: 10, 0.3: 5}, info) for c, info in infos.items()]
    assert [p["checkpoint"] for p in fig3_data(rows)] == ["pretrain/a_lr2", "pretrain/b"]


def test_frontier_and_binarization_points():
    points = {p["checkpoint"]: p for p in fig3_data(_rows())}
    assert list(points) == ["pretrain/a"]  # dense models are not on the frontier
    assert points["pretrain/a"]["geomean_edges"] == pytest.approx(20) and points["pretrain/a"]["val_loss"] == 3.0
    binarized = {p["checkpoint"]: p for p in binarization_data(_rows())}
    assert binarized["dense/small"]["tasks"] == 2  # the same tasks as everyone at the chosen target
    assert binarized["dense/small"]["mean_binarized_loss"] == pytest.approx(0.2)
    assert binarized["dense/small"]["mean_circuit_loss"] == pytest.approx(0.1)


def test_report_writes_every_figure_with_its_data(tmp_path):
    inputs = {}
    for row in _rows():
        folder = tmp_path / f"{row['checkpoint']}_{row['task']}".replace("/", "_")
        folder.mkdir()
        result = {**row, "total_nodes": 100, "test_pairs": 8, "loss_reduction": "mean"}
        result.update({key: 0.5 for key in ("calibrated_loss", "full_model_loss", "inverse_loss")})
        result["random_circuit_loss"] = 0.7
        result["cell"] = cell_name(row["checkpoint"], row["task"])
        result["kept"] = {"0.mlp.post_act": list(range(row["nodes"]))}
        write_result(folder, result)
        (folder / CIRCUIT_PAGE).write_text("<html></html>")
        inputs[result["cell"]] = folder
    ctx = local_context(tmp_path / "out", inputs=inputs)
    run_report(ctx)
    index = (ctx.out_dir / "index.html").read_text()
    for name in ("edges_by_task", "fig2_edges_vs_target", "fig3_frontier", "binarization"):
        assert (ctx.out_dir / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert json.loads((ctx.out_dir / f"{name}.json").read_text())
        assert (ctx.out_dir / f"{name}.csv").read_text().count("\n") >= 2
        assert f"{name}.png" in index and f"{name}.csv" in index
    assert ctx.metrics["dense_over_sparse_edges"]["pretrain/a"]["0.1"] == pytest.approx(16)
    assert ctx.metrics["mean_binarized_loss"]["pretrain/a"] == pytest.approx(0.2)
    assert "dense_over_sparse_edges" in index
