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
    write_figures,
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


def _row(checkpoint, task, edges, info, missed=(), failed_test=()):
    """A cell whose circuit at target t has edges[t]; targets in `missed` were not reached (val), those in
    `failed_test` were reached on val and missed on the test pairs."""
    sweep = [
        {
            "target_loss": t,
            "edges": edges[t],
            "nodes": edges[t],
            "reached_target": t not in missed,
            "test_reached_target": t not in missed and t not in failed_test,
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
    # The sparse model (val loss 3.0) pairs with dense/small (3.1), not dense/big (2.0): 0.1 apart, unmatched.
    assert data["pairs"] == [
        {
            "sparse": "pretrain/a",
            "dense": "dense/small",
            "val_loss_gap": pytest.approx(0.1),
            "tolerance": 0.05,
            "matched": False,
            "status": "no matched dense model",
        }
    ]
    ratios = {r["target_loss"]: r["dense_over_sparse_edges"] for r in data["ratios"]}
    assert ratios[0.1] == pytest.approx(16)
    assert ratios[0.3] == pytest.approx(geometric_mean([80, 80, 8]) / geometric_mean([5, 20, 2]))


def _matched_rows(dense_loss, tolerance=0.05, seeds=False):
    """A sparse model (val loss 3.0), the dense run's final checkpoint (2.0) and its matched_dense checkpoint."""
    sparse, final = _info(3.0), _info(2.0, sparse=False)
    matched = _info(dense_loss, sparse=False) | {
        "matched_to": "pretrain/a",
        "match_tolerance": tolerance,
        "matched": abs(dense_loss - 3.0) <= tolerance,
    }
    rows = []
    for task, (s_edges, m_edges, f_edges) in {"t1": (10, 100, 1), "t2": (40, 400, 1)}.items():
        rows.append(_row("pretrain/a", task, {0.1: s_edges, 0.3: s_edges}, sparse))
        rows.append(_row("matched_dense/a", task, {0.1: m_edges, 0.3: m_edges}, matched))
        rows.append(_row("dense", task, {0.1: f_edges, 0.3: f_edges}, final))
    if seeds:
        for row in rows:
            row["target_loss"] = 0.1
            row["seed_spread"] = {"edges": {"median": row["edges"], "min": row["edges"] / 2, "max": row["edges"] * 2}}
    return rows


def test_matched_pairing_takes_the_matched_dense_checkpoint_not_the_nearest_dense_model():
    # The dense run's final checkpoint (2.0) is not the pair: matched_dense/a (3.04) is the sparse model's own.
    data = fig2_data(_matched_rows(3.04))
    (pair,) = data["pairs"]
    assert pair["dense"] == "matched_dense/a" and pair["matched"] and pair["status"] == "matched"
    assert pair["val_loss_gap"] == pytest.approx(0.04)
    ratios = {r["target_loss"]: r["dense_over_sparse_edges"] for r in data["ratios"]}
    assert ratios[0.1] == pytest.approx(10)


def test_a_gap_beyond_the_tolerance_is_no_matched_dense_model(tmp_path):
    rows = _matched_rows(3.2)
    (pair,) = fig2_data(rows)["pairs"]
    assert pair["dense"] == "matched_dense/a" and not pair["matched"] and pair["status"] == "no matched dense model"
    metrics, section = write_figures(rows, tmp_path)
    assert metrics["dense_over_sparse_edges"] == {}  # never the headline
    assert metrics["unmatched_dense_over_sparse_edges"]["pretrain/a"]["0.1"] == pytest.approx(10)
    assert metrics["fig2_matching"] == {"pretrain/a": "no matched dense model"}
    assert "no matched dense model" in section and "UNMATCHED" in section


def test_only_circuits_that_hold_on_test_count_and_the_dropped_are_counted():
    sparse, dense = _info(3.0), _info(3.02, sparse=False)
    rows = [
        _row("pretrain/a", "t1", {0.1: 10, 0.3: 5}, sparse),
        # Selected on val at 0.1, fails the test pairs: dropped for every model at 0.1, counted.
        _row("pretrain/a", "t2", {0.1: 40, 0.3: 20}, sparse, failed_test=(0.1,)),
        _row("dense", "t1", {0.1: 100, 0.3: 50}, dense),
        _row("dense", "t2", {0.1: 400, 0.3: 200}, dense),
    ]
    data = fig2_data(rows)
    at = {(p["checkpoint"], p["target_loss"]): p for p in data["points"]}
    assert at["pretrain/a", 0.1]["task_names"] == ["t1"] and at["pretrain/a", 0.1]["dropped_on_test"] == 1
    assert at["dense", 0.1]["dropped_on_test"] == 0 and at["pretrain/a", 0.3]["tasks"] == 2
    assert data["pairs"][0]["matched"]  # 0.02 apart
    assert fig3_data(rows)[0]["dropped_on_test"] == 1


def test_seed_ranges_give_each_point_and_ratio_a_range():
    data = fig2_data(_matched_rows(3.04, seeds=True))
    at = {(p["checkpoint"], p["target_loss"]): p for p in data["points"]}
    point = at["pretrain/a", 0.1]
    assert point["geomean_edges_min"] == pytest.approx(10) and point["geomean_edges_max"] == pytest.approx(40)
    assert at["pretrain/a", 0.3]["geomean_edges_min"] is None  # seeds were run at the cell's own target only
    ratio = next(r for r in data["ratios"] if r["target_loss"] == 0.1)
    assert ratio["ratio_range"] == [pytest.approx(100 / 40), pytest.approx(400 / 10)]  # fewest/most, most/fewest


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
    # 0.1 nats apart: the ratio is reported as unmatched only.
    assert ctx.metrics["unmatched_dense_over_sparse_edges"]["pretrain/a"]["0.1"] == pytest.approx(16)
    assert ctx.metrics["dense_over_sparse_edges"] == {}
    assert ctx.metrics["mean_binarized_loss"]["pretrain/a"] == pytest.approx(0.2)
    assert "dense_over_sparse_edges" in index and "no matched dense model" in index
    summary = json.loads((ctx.out_dir / "summary.json").read_text())
    assert summary["fig2"]["fig2_matching"] == {"pretrain/a": "no matched dense model"}
    assert summary["fig2"]["pairs"][0]["val_loss_gap"] == pytest.approx(0.1)
