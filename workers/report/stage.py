"""The report stage: one cell over every prune cell: table, figure, browsable index.

The bridges cells and the interventions cells, when there are any, are inputs too: their A.4 intervention curves
(the bridges' before pruning, the interventions' through a circuit node) go into the index.
"""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..stage import Cell, Resources, Stage
from .config import ReportConfig
from .worker import CORPUS_INPUT, INTERVENTIONS_INPUT


def report_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    pruned = upstream.get("prune", [])
    if not config.report.enabled or not pruned:
        return []
    inputs = {cell.cell: cell.ref for cell in pruned}
    steered = upstream.get("bridges", []) + upstream.get("interventions", [])
    inputs |= {f"{INTERVENTIONS_INPUT}{cell.ref}": cell.ref for cell in steered}
    inputs |= {CORPUS_INPUT: cell.ref for cell in upstream.get("tokenize", [])}  # its corpus.json record
    return [Cell("report", "", {"match_tolerance": config.matched.tolerance}, inputs, Resources(num_cpus=1))]


def run_report_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_report

    run_report(ctx, **params)


REPORT = Stage(
    name="report",
    version="1",
    deps=("tokenize", "prune", "bridges", "interventions"),
    cells=report_cells,
    run="sparsepipe.workers.report.stage:run_report_cell",
    description="every circuit in one table, figure and browsable index (with the bridges' intervention curves)",
    config={"report": ReportConfig},
    provides=("report",),
    accepts_failed_inputs=True,  # built from the prune cells that committed; the failed ones are rows "failed"
)
