"""The paper's headline comparisons as report figures, each with its numbers beside it (JSON and CSV).

Inputs are the report's cell rows (`worker.summarize`): one per (checkpoint, task), each with its circuits
per target loss (`sweep`, the prune cell's target sweep) and `model_info` (the checkpoint's pretraining val
loss, width, L0, lr and lr group; `train.summary`).

Rules shared by every figure:

- Compared models: an lr sweep is a set of variants that differ only in lr (same `lr_group`); the one with
  the best pretraining val loss represents its group, the others are left out of every figure.
- Only circuits that hold count: found on val (`reached_target`) and at or below the target on the held-out
  test pairs (`test_reached_target`, DESIGN.md "Splits"). A circuit selected on val that fails test is
  dropped, and each point says how many were (`dropped_on_test`).
- Same task set: a point at target loss t averages over the tasks whose circuit holds at t for EVERY compared
  model, so a task one model misses drops out for all; the count is shown.
- Sparse vs dense (Fig. 2) at matched pretraining loss: each sparse model is paired with its matched_dense
  checkpoint (the dense checkpoint nearest its val loss, `model_info.matched_to`), or, without one, with the
  dense model nearest in val loss. A pair within the tolerance (0.05 nats unless configured) is matched and
  its ratio of geometric-mean edges is the headline `dense_over_sparse_edges`; a wider pair says "no matched
  dense model" and its ratio goes to `unmatched_dense_over_sparse_edges` only, labelled as such.
- Seeds: where a cell ran `prune.seeds` > 1, a point at the cell's target also gets the geometric mean of each
  task's fewest and most edges over the seeds (`geomean_edges_min`, `geomean_edges_max`), and a ratio its range.

Figures (`<name>.png` + `<name>.json` + `<name>.csv`):

    fig2_edges_vs_target   geometric-mean edges vs target loss per model, and the dense/sparse ratio (Fig. 2)
    fig3_frontier          pretraining val loss vs geometric-mean edges at the chosen target, one line per
                           total width (d_model), points along it by L0 (Fig. 3)
    binarization           mean test loss of the circuits at the chosen target, with and without every node
                           binarized (App. C, Fig. 34)
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

FIG2, FIG3, BINARIZATION = "fig2_edges_vs_target", "fig3_frontier", "binarization"


def geometric_mean(values: Iterable[float]) -> float | None:
    """exp(mean(log v)), a zero counted as 1 (an empty circuit); None for no values."""
    values = list(values)
    if not values:
        return None
    return math.exp(sum(math.log(max(v, 1)) for v in values) / len(values))


# ----------------------------------------------------------------------------- data


MATCH_TOLERANCE = 0.05  # the default of matched.tolerance
NO_MATCH = "no matched dense model"
CIRCUIT_KEYS = (
    "target_loss",
    "nodes",
    "edges",
    "reached_target",
    "test_reached_target",
    "circuit_loss",
    "binarized_loss",
)


def circuits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (checkpoint, task, target): edges, nodes, reached_target (val), test_reached_target,
    circuit_loss, binarized_loss; at the cell's own target also edges_min/edges_max over its seeds."""
    out = []
    for row in rows:
        sweep = row.get("sweep") or [row]
        edges_spread = (row.get("seed_spread") or {}).get("edges")
        for circuit in sweep:
            item = {"checkpoint": row["checkpoint"], "task": row["task"], **{k: circuit.get(k) for k in CIRCUIT_KEYS}}
            if item["test_reached_target"] is None:  # results from before the test decision was recorded
                item["test_reached_target"] = item["reached_target"]
            if edges_spread and item["target_loss"] == row.get("target_loss"):
                item["edges_min"], item["edges_max"] = edges_spread["min"], edges_spread["max"]
            out.append(item)
    return out


def holds(circuit: dict[str, Any]) -> bool:
    """Found on val and at or below the target on the test pairs."""
    return bool(circuit["reached_target"] and circuit["test_reached_target"])


def model_infos(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["checkpoint"]: row.get("model_info") or {} for row in rows}


def is_dense(checkpoint: str, info: dict[str, Any]) -> bool:
    return info["sparse"] is False if "sparse" in info else checkpoint.split("/")[0] == "dense"


def best_of_lr_groups(infos: dict[str, dict[str, Any]]) -> list[str]:
    """The checkpoints compared: the best pretraining val loss of each lr group, and every ungrouped one."""
    best: dict[str, str] = {}
    chosen = []
    for checkpoint, info in sorted(infos.items()):
        group = info.get("lr_group")
        if group is None or info.get("val_loss") is None:
            chosen.append(checkpoint)
        elif group not in best or info["val_loss"] < infos[best[group]]["val_loss"]:
            best[group] = checkpoint
    return sorted(chosen + list(best.values()))


def same_task_geomeans(
    circuit_rows: list[dict[str, Any]], checkpoints: list[str], target: float, edges_key: str = "edges"
) -> tuple[list[str], dict[str, float | None]]:
    """The tasks whose circuit holds (`holds`) at `target` for every checkpoint, and each checkpoint's
    geometric-mean `edges_key` over them (None where a circuit lacks that key: no seed range)."""
    held: dict[str, dict[str, Any]] = {c: {} for c in checkpoints}
    for row in circuit_rows:
        if row["checkpoint"] in held and row["target_loss"] == target and holds(row):
            held[row["checkpoint"]][row["task"]] = row.get(edges_key)
    sets = [set(tasks) for tasks in held.values()]
    tasks = sorted(set.intersection(*sets)) if sets else []

    def geomean(checkpoint: str) -> float | None:
        values = [held[checkpoint][t] for t in tasks]
        return None if any(v is None for v in values) else geometric_mean(values)

    return tasks, {c: geomean(c) for c in checkpoints}


def dropped_on_test(circuit_rows: list[dict[str, Any]], checkpoint: str, target: float) -> int:
    """Circuits of `checkpoint` at `target` selected on val that fail the test pairs (left out of every figure)."""
    return sum(
        1
        for row in circuit_rows
        if row["checkpoint"] == checkpoint
        and row["target_loss"] == target
        and row["reached_target"]
        and not row["test_reached_target"]
    )


def nearest_dense(infos: dict[str, dict[str, Any]], sparse: str, dense: list[str]) -> tuple[str | None, float | None]:
    """The dense model nearest to `sparse` in pretraining val loss, and the absolute gap (None without losses)."""
    loss = infos[sparse].get("val_loss")
    known = [d for d in dense if infos[d].get("val_loss") is not None]
    if loss is None or not known:
        return (dense[0], None) if len(dense) == 1 else (None, None)
    best = min(known, key=lambda d: (abs(infos[d]["val_loss"] - loss), d))
    return best, abs(infos[best]["val_loss"] - loss)


def matched_partner(
    infos: dict[str, dict[str, Any]], sparse: str, dense: list[str], tolerance: float
) -> dict[str, Any]:
    """The pair of `sparse` for Fig. 2: its matched_dense checkpoint when one was committed, else the nearest
    dense model; `matched` when the val-loss gap is known and within the tolerance (the matched_dense
    checkpoint's own tolerance where it has one)."""
    own = [d for d in dense if infos[d].get("matched_to") == sparse]
    if own:
        partner = own[0]
        losses = infos[sparse].get("val_loss"), infos[partner].get("val_loss")
        gap = None if None in losses else abs(losses[0] - losses[1])
        tolerance = infos[partner].get("match_tolerance", tolerance)
    else:
        partner, gap = nearest_dense(infos, sparse, dense) if dense else (None, None)
    matched = partner is not None and gap is not None and gap <= tolerance
    return {
        "sparse": sparse,
        "dense": partner,
        "val_loss_gap": gap,
        "tolerance": tolerance,
        "matched": matched,
        "status": "matched" if matched else NO_MATCH,
    }


def ratio_range(
    geomeans: dict[str, float | None], low: dict[str, float | None], high: dict[str, float | None], pair: dict
) -> list[float] | None:
    """[min, max] of dense/sparse edges over the seeds: fewest dense over most sparse edges, and the reverse."""
    dense, sparse = pair["dense"], pair["sparse"]
    values = (low[dense], high[dense], low[sparse], high[sparse])
    if any(v is None or v == 0 for v in values):
        return None
    return [low[dense] / high[sparse], high[dense] / low[sparse]]


def main_target(rows: list[dict[str, Any]]) -> float:
    """The target the cells' hyperparameters were tuned at, as each prune result records it (`tuned_target`)."""
    tuned = sorted({row["tuned_target"] for row in rows})
    if len(tuned) != 1:
        raise ValueError(f"the prune cells were tuned at different target losses {tuned}: report them separately")
    return tuned[0]


def fig2_data(rows: list[dict[str, Any]], tolerance: float = MATCH_TOLERANCE) -> dict[str, Any]:
    """Geometric-mean edges per (model, target) over the same task set (circuits that hold), the sparse/dense
    pairs (matched or not, `matched_partner`) and their ratios, with seed ranges where cells have them."""
    infos = model_infos(rows)
    compared = best_of_lr_groups(infos)
    circuit_rows = circuits(rows)
    targets = sorted({row["target_loss"] for row in circuit_rows})
    dense = [c for c in compared if is_dense(c, infos[c])]
    sparse = [c for c in compared if not is_dense(c, infos[c])]
    pairs = [matched_partner(infos, checkpoint, dense, tolerance) for checkpoint in sparse]
    points, ratios = [], []
    for target in targets:
        tasks, geomeans = same_task_geomeans(circuit_rows, compared, target)
        _, low = same_task_geomeans(circuit_rows, compared, target, "edges_min")
        _, high = same_task_geomeans(circuit_rows, compared, target, "edges_max")
        for checkpoint in compared:
            points.append(
                {
                    "target_loss": target,
                    "checkpoint": checkpoint,
                    "dense": is_dense(checkpoint, infos[checkpoint]),
                    "val_loss": infos[checkpoint].get("val_loss"),
                    "geomean_edges": geomeans[checkpoint],
                    "geomean_edges_min": low[checkpoint],
                    "geomean_edges_max": high[checkpoint],
                    "tasks": len(tasks),
                    "task_names": tasks,
                    "dropped_on_test": dropped_on_test(circuit_rows, checkpoint, target),
                }
            )
        for pair in pairs:
            if pair["dense"] is None:
                continue
            top, bottom = geomeans[pair["dense"]], geomeans[pair["sparse"]]
            ratio = top / bottom if top is not None and bottom is not None else None
            ratios.append(
                {
                    "target_loss": target,
                    **pair,
                    "dense_over_sparse_edges": ratio,
                    "ratio_range": ratio_range(geomeans, low, high, pair),
                    "tasks": len(tasks),
                }
            )
    return {"compared": compared, "models": infos, "pairs": pairs, "points": points, "ratios": ratios}


def fig3_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per compared sparse model: pretraining val loss and geometric-mean edges at the chosen target (the
    tasks every compared sparse model reached), with its width and sparsity."""
    infos = model_infos(rows)
    sparse = [c for c in best_of_lr_groups(infos) if not is_dense(c, infos[c])]
    target = main_target(rows)
    circuit_rows = circuits(rows)
    tasks, geomeans = same_task_geomeans(circuit_rows, sparse, target)
    keys = ("d_model", "n_layer", "d_mlp", "afrac", "target_l0", "nonzero_matrix_params", "matrix_params", "lr")
    return [
        {
            "checkpoint": c,
            "val_loss": infos[c].get("val_loss"),
            "geomean_edges": geomeans[c],
            "target_loss": target,
            "tasks": len(tasks),
            "dropped_on_test": dropped_on_test(circuit_rows, c, target),
            **{key: infos[c].get(key) for key in keys},
        }
        for c in sparse
    ]


def binarization_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per compared model: mean test loss of its circuits at the chosen target, plain and binarized, over the
    tasks every compared model reached (App. C, Fig. 34)."""
    infos = model_infos(rows)
    compared = best_of_lr_groups(infos)
    target = main_target(rows)
    circuit_rows = circuits(rows)
    tasks, _ = same_task_geomeans(circuit_rows, compared, target)
    by_checkpoint: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in circuit_rows:
        if row["target_loss"] == target and row["task"] in tasks and row["binarized_loss"] is not None:
            by_checkpoint[row["checkpoint"]].append(row)
    out = []
    for checkpoint in compared:
        items = by_checkpoint[checkpoint]
        out.append(
            {
                "checkpoint": checkpoint,
                "target_loss": target,
                "tasks": len(items),
                "mean_circuit_loss": sum(r["circuit_loss"] for r in items) / len(items) if items else None,
                "mean_binarized_loss": sum(r["binarized_loss"] for r in items) / len(items) if items else None,
            }
        )
    return out


# --------------------------------------------------------------------------- plots


def _label(checkpoint: str, info: dict[str, Any]) -> str:
    loss = info.get("val_loss")
    return checkpoint if loss is None else f"{checkpoint} (val loss {loss:.3f})"


def plot_fig2(data: dict[str, Any], path: Path) -> None:
    from ..plots import GRID_ALPHA, LEGEND_FONTSIZE, new_figure, save, save_data

    figure = new_figure(7, 6.5)
    edges_ax, ratio_ax = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    for checkpoint in data["compared"]:
        points = [p for p in data["points"] if p["checkpoint"] == checkpoint and p["geomean_edges"] is not None]
        style = "s--" if points and points[0]["dense"] else "o-"
        lines = edges_ax.plot(
            [p["target_loss"] for p in points],
            [p["geomean_edges"] for p in points],
            style,
            ms=4,
            label=_label(checkpoint, data["models"][checkpoint]),
        )
        ranged = [p for p in points if p["geomean_edges_min"] is not None and p["geomean_edges_max"] is not None]
        if ranged:  # the seeds' range: fewest and most edges of each task's circuit
            edges_ax.errorbar(
                [p["target_loss"] for p in ranged],
                [p["geomean_edges"] for p in ranged],
                yerr=[
                    [p["geomean_edges"] - p["geomean_edges_min"] for p in ranged],
                    [p["geomean_edges_max"] - p["geomean_edges"] for p in ranged],
                ],
                fmt="none",
                capsize=3,
                color=lines[0].get_color(),
            )
    counts = {p["target_loss"]: p["tasks"] for p in data["points"]}
    for target, count in counts.items():
        edges_ax.annotate(f"{count} tasks", (target, 0), xycoords=("data", "axes fraction"), fontsize=7, ha="center")
    if len({p["geomean_edges"] for p in data["points"] if p["geomean_edges"]}) > 1:  # one value: no log range
        edges_ax.set_yscale("log")
    edges_ax.set_ylabel("geometric mean of circuit edges")
    edges_ax.set_title("Circuit size vs target loss, same tasks for every model (paper Fig. 2)")
    edges_ax.grid(alpha=GRID_ALPHA, which="both")
    edges_ax.legend(fontsize=LEGEND_FONTSIZE)
    for pair in data["pairs"]:
        ratios = [r for r in data["ratios"] if r["sparse"] == pair["sparse"] and r["dense_over_sparse_edges"]]
        gap = "" if pair["val_loss_gap"] is None else f", val loss gap {pair['val_loss_gap']:.3f}"
        kind = "" if pair["matched"] else f" (UNMATCHED: {NO_MATCH} within {pair['tolerance']:g})"
        ratio_ax.plot(
            [r["target_loss"] for r in ratios],
            [r["dense_over_sparse_edges"] for r in ratios],
            "o-" if pair["matched"] else "x:",
            ms=4,
            label=f"{pair['dense']} / {pair['sparse']}{gap}{kind}",
        )
        for r in ratios:
            ratio_ax.annotate(f"{r['dense_over_sparse_edges']:.1f}x", (r["target_loss"], r["dense_over_sparse_edges"]))
    ratio_ax.axhline(1, color="grey", ls=":")
    if any(p["geomean_edges"] for p in data["points"]):  # no circuit reached a target: nothing to put on a log axis
        ratio_ax.set_xscale("log")
    ratio_ax.set_xlabel("target task loss")
    ratio_ax.set_ylabel("dense / sparse edges")
    ratio_ax.grid(alpha=GRID_ALPHA, which="both")
    if data["pairs"]:
        ratio_ax.legend(fontsize=LEGEND_FONTSIZE)
    save(figure, path)
    save_data(data["points"] + data["ratios"], path)


def plot_fig3(points: list[dict[str, Any]], path: Path) -> None:
    from ..plots import GRID_ALPHA, LEGEND_FONTSIZE, new_figure, save, save_data

    figure = new_figure(7, 4.5)
    axis = figure.subplots()
    by_width: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        if point["geomean_edges"] is not None and point["val_loss"] is not None:
            by_width[point["d_model"]].append(point)
    for width, items in sorted(by_width.items(), key=lambda item: str(item[0])):
        items.sort(key=lambda p: p["target_l0"] or 0)
        axis.plot(
            [p["geomean_edges"] for p in items], [p["val_loss"] for p in items], "o-", ms=5, label=f"d_model {width}"
        )
        for p in items:
            axis.annotate(f"L0 {_number(p['target_l0'])}", (p["geomean_edges"], p["val_loss"]), fontsize=7)
    tasks = points[0]["tasks"] if points else 0
    target = points[0]["target_loss"] if points else None
    axis.set_xscale("log")
    axis.set_xlabel(f"geometric mean of circuit edges at target {target} ({tasks} tasks)  (interpretability)")
    axis.set_ylabel("pretraining val loss (capability)")
    axis.set_title("Capability vs interpretability, one line per total width (paper Fig. 3)")
    axis.grid(alpha=GRID_ALPHA, which="both")
    if by_width:
        axis.legend(fontsize=LEGEND_FONTSIZE)
    save(figure, path)
    save_data(points, path)


def plot_binarization(points: list[dict[str, Any]], path: Path) -> None:
    from ..plots import GRID_ALPHA, LEGEND_FONTSIZE, new_figure, save, save_data

    figure = new_figure(max(5, 1.2 * len(points) + 2), 4.5)
    axis = figure.subplots()
    xs = range(len(points))
    for offset, key, label in ((-0.2, "mean_circuit_loss", "circuit"), (0.2, "mean_binarized_loss", "binarized")):
        axis.bar([x + offset for x in xs], [p[key] or 0 for p in points], width=0.4, label=label)
    axis.set_xticks(list(xs))
    axis.set_xticklabels([f"{p['checkpoint']}\n({p['tasks']} tasks)" for p in points], fontsize=8)
    axis.set_ylabel("mean task loss, test pairs")
    axis.set_title("Circuit loss with every node binarized (paper App. C, Fig. 34)")
    axis.grid(alpha=GRID_ALPHA, axis="y")
    axis.legend(fontsize=LEGEND_FONTSIZE)
    save(figure, path)
    save_data(points, path)


# ----------------------------------------------------------------------- the report


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_number(row.get(c)))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(name: str, caption: str) -> str:
    return (
        f"<figure><img src='{name}.png' alt='{html.escape(caption)}'><figcaption>{html.escape(caption)} "
        f"(data: <a href='{name}.json'>JSON</a>, <a href='{name}.csv'>CSV</a>)</figcaption></figure>"
    )


def _range_text(ratio: dict[str, Any]) -> str | None:
    bounds = ratio.get("ratio_range")
    return None if not bounds else f"{bounds[0]:.3g}–{bounds[1]:.3g}"


def write_figures(
    rows: list[dict[str, Any]], out: Path, tolerance: float = MATCH_TOLERANCE
) -> tuple[dict[str, Any], str]:
    """Writes the three figures with their data into `out`; returns (metrics, the index's HTML section)."""
    fig2 = fig2_data(rows, tolerance)
    fig3 = fig3_data(rows)
    binarized = binarization_data(rows)
    plot_fig2(fig2, out / f"{FIG2}.png")
    plot_fig3(fig3, out / f"{FIG3}.png")
    plot_binarization(binarized, out / f"{BINARIZATION}.png")
    ratios: dict[str, dict[str, float | None]] = defaultdict(dict)
    unmatched: dict[str, dict[str, float | None]] = defaultdict(dict)
    ranges: dict[str, dict[str, list[float] | None]] = defaultdict(dict)
    for r in fig2["ratios"]:
        target = f"{r['target_loss']:g}"
        (ratios if r["matched"] else unmatched)[r["sparse"]][target] = r["dense_over_sparse_edges"]
        ranges[r["sparse"]][target] = r["ratio_range"]
    metrics = {
        # The headline: matched pairs only (val loss gap within the tolerance); see the module docstring.
        "dense_over_sparse_edges": dict(ratios),
        "dense_over_sparse_edges_range": dict(ranges),
        "unmatched_dense_over_sparse_edges": dict(unmatched),
        "fig2_matching": {p["sparse"]: p["status"] for p in fig2["pairs"]},
        "pairs": fig2["pairs"],
        "mean_binarized_loss": {p["checkpoint"]: p["mean_binarized_loss"] for p in binarized},
        "compared_checkpoints": fig2["compared"],
    }
    models = [
        {"checkpoint": c, **{k: fig2["models"][c].get(k) for k in ("val_loss", "d_model", "target_l0", "lr")}}
        for c in sorted(fig2["models"])
    ]
    section = (
        "<h2>Sparse vs dense at matched pretraining loss (paper Fig. 2)</h2>"
        "<p>Compared models (the best val loss of each lr sweep) and their pretraining val loss:</p>"
        + _table(models, ["checkpoint", "val_loss", "d_model", "target_l0", "lr"])
        + "<p>Each sparse model is paired with the dense checkpoint nearest its pretraining val loss "
        "(matched_dense: an earlier checkpoint of the dense run). Only a pair within the tolerance is matched; "
        f"otherwise the row says &quot;{NO_MATCH}&quot; and its ratio is the unmatched one, not a result. "
        "Only circuits that hold on the test pairs count; 'range' is the ratio over the prune seeds.</p>"
        + "".join(
            f"<p><strong>{html.escape(p['sparse'])}: {NO_MATCH}</strong> within {p['tolerance']:g} nats "
            f"(nearest: {html.escape(str(p['dense']))}, gap {_number(p['val_loss_gap'])}); the ratio below is "
            "UNMATCHED.</p>"
            for p in fig2["pairs"]
            if not p["matched"]
        )
        + _table(
            [{**r, "status": r["status"], "range": _range_text(r)} for r in fig2["ratios"]],
            ["target_loss", "sparse", "dense", "val_loss_gap", "status", "tasks", "dense_over_sparse_edges", "range"],
        )
        + _table(
            [p for p in fig2["points"]],
            [
                "target_loss",
                "checkpoint",
                "tasks",
                "dropped_on_test",
                "geomean_edges",
                "geomean_edges_min",
                "geomean_edges_max",
            ],
        )
        + _figure(FIG2, "geometric-mean edges vs target loss, over the tasks whose circuit holds for every model")
        + "<h2>The capability-interpretability frontier (paper Fig. 3)</h2>"
        + _table(
            fig3,
            [
                "checkpoint",
                "d_model",
                "target_l0",
                "nonzero_matrix_params",
                "val_loss",
                "tasks",
                "dropped_on_test",
                "geomean_edges",
            ],
        )
        + _figure(FIG3, "pretraining val loss vs geometric-mean edges, one line per total width")
        + "<h2>Binarization (paper App. C, Fig. 34)</h2>"
        + _table(binarized, ["checkpoint", "target_loss", "tasks", "mean_circuit_loss", "mean_binarized_loss"])
        + _figure(BINARIZATION, "mean test loss of the circuits, plain and with every node binarized")
    )
    return metrics, section
