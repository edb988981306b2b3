"""The report stage: every pruned circuit in one table, figure and browsable index.

Inputs are the prune cells, named "<checkpoint>:<task>" (e.g. "pretrain/tiny:bracket_counting"), and
the bridges cells, named "interventions/bridges/<variant>", whose A.4 intervention curves are copied under
`interventions/` and shown in the index.
Writes `summary.json`, `summary.md`, `edges_by_task.png` and `index.html`, with every circuit page
copied under `circuits/` so the report folder opens in a browser on its own.

Every loss in the tables is measured on the task's held-out test pairs (their count is the
"test pairs" column), in the prune cell's loss_reduction; "reached" is the selection on val
pairs that bisection made (the circuit's test loss is beside it).

The report is built from what succeeded: a prune cell that failed (the stage `accepts_failed_inputs`)
is a row "failed: <error>" in the tables and in summary.json's "failed_cells", and is left out of the
headline and of every figure, which say how many cells are missing.
"""

from __future__ import annotations

import html
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from ..context import WorkContext
from ..prune.degenerate import described
from ..prune.result import CIRCUIT_PAGE, read_result, split_cell
from ..tokenize.config import CORPUS_RECORD
from .figures import MATCH_TOLERANCE, circuits, main_target, same_task_geomeans, write_figures

LOSS_KEYS = (
    "circuit_loss",
    "binarized_loss",
    "calibrated_loss",
    "full_model_loss",
    "inverse_loss",
    "random_circuit_loss",
)
LOSS_HEADERS = ("circuit loss", "binarized", "calibrated", "full model", "inverse", "random circuit")
# Input-name prefix of a bridges cell ("interventions/bridges/base"); prune cells are "<checkpoint>:<task>".
INTERVENTIONS_INPUT = "interventions/"
INTERVENTIONS_DIR = "interventions"  # in a bridges artifact: <task>.json and <task>.png
CORPUS_INPUT = "corpus"  # the tokenize artifact, for its corpus.json record (digest and environment)


def summarize(inputs: dict[str, Path]) -> list[dict[str, Any]]:
    rows = []
    for name, folder in sorted(inputs.items()):
        checkpoint, task = split_cell(name)
        result = read_result(folder)
        row = {
            "checkpoint": checkpoint,
            "task": task,
            "nodes": result.nodes,
            "edges": result.edges,
            "reached_target": result.reached_target,
        }
        row.update(
            {
                key: getattr(result, key)
                for key in (
                    "total_nodes",
                    "target_loss",
                    "tuned_target",
                    "loss_reduction",
                    "test_pairs",
                    "test_reached_target",
                    "circuit",
                    *LOSS_KEYS,
                )
            }
        )
        # prune.seeds and the bootstrap intervals (prune/seeds.py, prune/intervals.py); absent in older results.
        row.update({key: getattr(result, key) for key in ("seeds", "seed_spread", "intervals")})
        # The circuits per target and the checkpoint's summary, for the figures (not the tables).
        row["sweep"] = [{k: v for k, v in c.items() if k != "kept"} for c in result.sweep]
        row["model_info"] = result.model_info
        rows.append(row)
    return rows


def failed_rows(failed: dict[str, str]) -> list[dict[str, Any]]:
    """One row per failed prune input ("<checkpoint>:<task>" -> its error), by name."""
    rows = []
    for name, error in sorted(failed.items()):
        checkpoint, task = split_cell(name)
        rows.append({"checkpoint": checkpoint, "task": task, "error": error})
    return rows


def with_failures(headline: dict[str, dict[str, Any]], failures: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every checkpoint's headline with its count of failed cells (a checkpoint whose cells all failed too)."""
    empty = {"tasks": 0, "reached_target": 0, "common_tasks": 0, "geomean_edges": None}
    merged = {checkpoint: {**info, "failed": 0} for checkpoint, info in headline.items()}
    for row in failures:
        merged.setdefault(row["checkpoint"], {**empty, "failed": 0})["failed"] += 1
    return dict(sorted(merged.items()))


def failed_text(row: dict[str, Any]) -> str:
    return f"failed: {row['error']}"


def missing_note(rows: list[dict[str, Any]], failures: Sequence[dict[str, Any]]) -> str:
    """What the headline and the figures leave out (empty when no cell failed)."""
    if not failures:
        return ""
    names = ", ".join(f"{r['checkpoint']}:{r['task']}" for r in failures)
    total = len(rows) + len(failures)
    return (
        f"{len(failures)} of {total} cells failed and are missing from the headline and every figure ({names}); "
        "`sparsepipe status --failed` lists them, `sparsepipe run` retries them."
    )


def geometric_mean_edges(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per checkpoint: the paper's headline, the geometric mean of edges at the target loss over the same task
    set for every checkpoint: the tasks whose circuit holds (val and test) for every checkpoint
    (`figures.same_task_geomeans`)."""
    by_checkpoint: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_checkpoint[row["checkpoint"]].append(row)
    checkpoints = sorted(by_checkpoint)
    common, geomeans = same_task_geomeans(circuits(rows), checkpoints, main_target(rows)) if rows else ([], {})
    return {
        checkpoint: {
            "tasks": len(by_checkpoint[checkpoint]),
            "reached_target": sum(1 for r in by_checkpoint[checkpoint] if r["reached_target"]),
            "common_tasks": len(common),
            "geomean_edges": geomeans[checkpoint],
        }
        for checkpoint in checkpoints
    }


def seed_text(row: dict[str, Any], key: str = "edges") -> str:
    """ "median (min–max, n seeds)" of `key` over the cell's prune seeds; "–" without more than one."""
    spread, seeds = (row.get("seed_spread") or {}).get(key), row.get("seeds") or []
    if not spread or len(seeds) < 2:
        return "–"
    return f"{spread['median']:.4g} ({spread['min']:.4g}–{spread['max']:.4g}, {len(seeds)} seeds)"


def interval_text(row: dict[str, Any], key: str) -> str:
    """The bootstrap 95% interval over test pairs of loss `key`, "[low, high]"; "–" without one."""
    bounds = (row.get("intervals") or {}).get(key)
    return "–" if not bounds else f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


SPREAD_HEADERS = ("edges over seeds", "circuit loss over seeds", "circuit loss 95% CI", "full model 95% CI")


def spread_cells(row: dict[str, Any]) -> list[str]:
    return [
        seed_text(row, "edges"),
        seed_text(row, "circuit_loss"),
        interval_text(row, "circuit_loss"),
        interval_text(row, "full_model_loss"),
    ]


def _geomean_text(info: dict[str, Any]) -> str:
    return "–" if info["geomean_edges"] is None else f"{info['geomean_edges']:.1f}"


def _reduction_text(rows: list[dict[str, Any]]) -> str:
    """How the losses reduce a pair's two prompts, e.g. "loss_reduction mean" (several if cells differ)."""
    reductions = sorted({r.get("loss_reduction") or "mean" for r in rows})
    return "loss_reduction " + ", ".join(reductions)


def markdown_table(
    rows: list[dict[str, Any]], headline: dict[str, dict[str, Any]], failures: Sequence[dict[str, Any]] = ()
) -> str:
    lines = [
        "| checkpoint | tasks | reached target | common tasks | geomean edges | failed |",
        "|---|---|---|---|---|---|",
    ]
    for checkpoint, info in headline.items():
        lines.append(
            f"| {checkpoint} | {info['tasks']} | {info['reached_target']} | {info['common_tasks']} | "
            f"{_geomean_text(info)} | {info.get('failed', 0)} |"
        )
    note = missing_note(rows, failures)
    lines += ["", note] if note else []
    lines += ["", f"Losses on the test split ({_reduction_text(rows)}); 'reached' is the val-split selection.", ""]
    lines += [
        "| checkpoint | task | nodes | edges | reached | "
        + " | ".join(LOSS_HEADERS)
        + " | test pairs | "
        + " | ".join(SPREAD_HEADERS)
        + " |",
        "|---" * (6 + len(LOSS_HEADERS) + len(SPREAD_HEADERS)) + "|",
    ]
    for r in rows:
        losses = " | ".join(f"{r[k]:.3f}" if isinstance(r[k], (int, float)) else "–" for k in LOSS_KEYS)
        reached = described(r["reached_target"], r.get("circuit"))
        pairs = "–" if r["test_pairs"] is None else r["test_pairs"]
        lines.append(
            f"| {r['checkpoint']} | {r['task']} | {r['nodes']} | {r['edges']} | {reached} | {losses} | {pairs} | "
            + " | ".join(spread_cells(r))
            + " |"
        )
    for r in failures:
        error = failed_text(r).replace("|", "\\|")
        lines.append(f"| {r['checkpoint']} | {r['task']} | {error} |" + " – |" * (3 + len(LOSS_KEYS)))
    return "\n".join(lines) + "\n"


def plot_edges_by_task(rows: list[dict[str, Any]], path: Path) -> None:
    from ..plots import LEGEND_FONTSIZE, new_figure, save, save_data

    tasks = sorted({r["task"] for r in rows})
    checkpoints = sorted({r["checkpoint"] for r in rows})
    width = 0.8 / max(1, len(checkpoints))
    figure = new_figure(max(6, 0.5 * len(tasks) * max(1, len(checkpoints))), 4.5)
    axis = figure.subplots()
    for number, checkpoint in enumerate(checkpoints):
        lookup = {r["task"]: r for r in rows if r["checkpoint"] == checkpoint}
        xs = [i + number * width for i, task in enumerate(tasks) if task in lookup]
        heights = [max(1, lookup[task]["edges"]) for task in tasks if task in lookup]
        hatches = ["" if lookup[task]["reached_target"] else "//" for task in tasks if task in lookup]
        bars = axis.bar(xs, heights, width=width, label=checkpoint)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
    axis.set_yscale("log")
    axis.set_xticks([i + width * (len(checkpoints) - 1) / 2 for i in range(len(tasks))])
    axis.set_xticklabels(tasks, rotation=60, ha="right", fontsize=8)
    axis.set_ylabel("circuit edges")
    axis.set_title("Circuit size per task (hatched: target loss not reached)")
    axis.legend(fontsize=LEGEND_FONTSIZE)
    save(figure, path)
    save_data(
        [
            {key: r[key] for key in ("checkpoint", "task", "target_loss", "nodes", "edges", "reached_target")}
            for r in rows
        ],
        path,
    )


def page_name(checkpoint: str, task: str) -> str:
    return f"{checkpoint.replace('/', '_')}__{task}.html"


def index_html(
    rows: list[dict[str, Any]], headline: dict[str, dict[str, Any]], failures: Sequence[dict[str, Any]] = ()
) -> str:
    head = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{i['tasks']}</td><td>{i['reached_target']}</td><td>{i['common_tasks']}</td>"
        f"<td>{_geomean_text(i)}</td><td>{i.get('failed', 0)}</td></tr>"
        for c, i in headline.items()
    )
    body_failed = "".join(  # the error spans the columns from nodes to test pairs
        f"<tr class='failed'><td>{html.escape(r['checkpoint'])}</td><td>{html.escape(r['task'])}</td>"
        f"<td colspan='{4 + len(LOSS_KEYS)}'>{html.escape(failed_text(r))}</td></tr>"
        for r in failures
    )
    note = missing_note(rows, failures)
    note_html = f"<p class='missing'>{html.escape(note)}</p>" if note else ""
    edges_figure = """<figure><img src="edges_by_task.png" alt="circuit size per task"><figcaption>circuit size per task
(data: <a href="edges_by_task.json">JSON</a>, <a href="edges_by_task.csv">CSV</a>)</figcaption></figure>"""
    body = "".join(
        f"<tr class='{'ok' if r['reached_target'] else 'miss'}'><td>{html.escape(r['checkpoint'])}</td>"
        f"<td><a href='circuits/{html.escape(page_name(r['checkpoint'], r['task']))}'>{html.escape(r['task'])}</a></td>"
        f"<td>{r['nodes']}</td><td>{r['edges']}</td><td>{described(r['reached_target'], r.get('circuit'))}</td>"
        + "".join(f"<td>{r[k]:.3f}</td>" if isinstance(r[k], (int, float)) else "<td>–</td>" for k in LOSS_KEYS)
        + f"<td>{'–' if r['test_pairs'] is None else r['test_pairs']}</td>"
        + "".join(f"<td>{html.escape(text)}</td>" for text in spread_cells(r))
        + "</tr>"
        for r in rows
    )
    body += body_failed
    loss_heads = "".join(f"<th>{h}</th>" for h in LOSS_HEADERS)
    spread_heads = "".join(f"<th>{h}</th>" for h in SPREAD_HEADERS)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>sparsepipe circuits</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}
tr.miss{{color:#999}}tr.failed td{{color:#b00;text-align:left}}.missing{{color:#b00}}</style></head><body>
<h1>Circuits</h1><p>Edges are nonzero weights between two kept nodes; the headline is their geometric mean
over the tasks whose circuit holds for every checkpoint at the target loss (selected on val, at or below the
target on test: "common tasks"), the same set for all.</p>
{note_html}
<table><tr><th>checkpoint</th><th>tasks</th><th>reached target</th><th>common tasks</th>
<th>geomean edges</th><th>failed</th></tr>{head}</table>
{edges_figure if rows else ""}
<p>Losses on each task's held-out test pairs ({html.escape(_reduction_text(rows))});
"reached" is the selection on val pairs.</p>
<table><tr><th>checkpoint</th><th>task</th><th>nodes</th><th>edges</th><th>reached</th>
{loss_heads}<th>test pairs</th>{spread_heads}</tr>{body}</table>
</body></html>"""


def copy_interventions(bridges: dict[str, Path], out: Path) -> list[str]:
    """The bridges cells' A.4 intervention curves (interventions/<task>.json, .png) under out/interventions/<cell>/;
    returns the PNG paths, relative to `out`."""
    pictures = []
    for name, folder in sorted(bridges.items()):
        source = folder / INTERVENTIONS_DIR
        if not source.is_dir():
            continue
        target = out / INTERVENTIONS_DIR / name.replace("/", "_")
        shutil.copytree(source, target)
        pictures += [str(png.relative_to(out)) for png in sorted(target.glob("*.png"))]
    return pictures


def read_corpus_record(tokens: Path | None) -> dict[str, Any] | None:
    """The tokenize artifact's corpus.json: which real code the models saw (its digest) and where it was read."""
    path = None if tokens is None else Path(tokens) / CORPUS_RECORD
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def run_report(ctx: WorkContext, match_tolerance: float = MATCH_TOLERANCE) -> None:
    pruned = {
        name: folder
        for name, folder in ctx.inputs.items()
        if not name.startswith(INTERVENTIONS_INPUT) and name != CORPUS_INPUT
    }
    bridged = {  # "bridges/<variant>" -> its folder, for the intervention curves
        name.removeprefix(INTERVENTIONS_INPUT): folder
        for name, folder in ctx.inputs.items()
        if name.startswith(INTERVENTIONS_INPUT)
    }
    failures = failed_rows(
        {name: error for name, error in ctx.failed_inputs.items() if not name.startswith(INTERVENTIONS_INPUT)}
    )
    if not pruned and not failures:
        raise ValueError(
            "the report has no pruned circuits to summarize; run the prune stage with at least one task and checkpoint"
        )
    rows = summarize(pruned)
    headline = with_failures(geometric_mean_edges(rows), failures)
    out = ctx.out_dir
    (out / "circuits").mkdir()
    interventions = copy_interventions(bridged, out)
    for name, folder in pruned.items():
        checkpoint, task = split_cell(name)
        shutil.copyfile(folder / CIRCUIT_PAGE, out / "circuits" / page_name(checkpoint, task))
    corpus = read_corpus_record(ctx.inputs.get(CORPUS_INPUT))
    (out / "summary.md").write_text(markdown_table(rows, headline, failures))
    figure_metrics: dict[str, Any] = {}
    figures_section = "<p class='missing'>No cell committed: there is nothing to plot.</p>"
    if rows:  # the figures count only the cells that committed (the note above says how many are missing)
        plot_edges_by_task(rows, out / "edges_by_task.png")
        figure_metrics, figures_section = write_figures(rows, out, match_tolerance)
    # "fig2": the sparse/dense pairs (matched or "no matched dense model") and the ratios, as in the metrics.
    summary = {
        "checkpoints": headline,
        "cells": rows,
        "failed_cells": failures,
        "corpus": corpus,
        "fig2": figure_metrics,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    page = index_html(rows, headline, failures).replace("</body>", figures_section + "</body>")
    if interventions:
        figures = "".join(
            f"<figure><img src='{html.escape(p)}'><figcaption>{html.escape(p)}</figcaption></figure>"
            for p in interventions
        )
        section = (
            "<h2>Bridge interventions (paper A.4, Fig. 9)</h2>"
            "<p>The dense model's candidate probabilities while a bridged sparse node steers it.</p>"
        )
        page = page.replace("</body>", section + figures + "</body>")
    if corpus is not None:
        environment = ", ".join(f"{k} {v}" for k, v in corpus["environment"].items())
        page = page.replace(
            "</body>",
            f"<h2>Corpus</h2><p>Real code: {corpus['documents']} documents, {corpus['bytes']} bytes, digest "
            f"<code>{html.escape(corpus['digest'])}</code>; read in: {html.escape(environment)}.</p></body>",
        )
    (out / "index.html").write_text(page)
    ctx.metrics.update(
        {
            "cells": len(rows),
            "failed_cells": [f"{r['checkpoint']}:{r['task']}" for r in failures],
            "geomean_edges": {c: i["geomean_edges"] for c, i in headline.items()},
            "reached_target": sum(r["reached_target"] for r in rows),
            "corpus_digest": None if corpus is None else corpus["digest"],
            **figure_metrics,
        }
    )
