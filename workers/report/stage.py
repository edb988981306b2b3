"""The report stage: one cell over every prune cell: table, figure, browsable index."""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..stage import Cell, Resources, Stage
from .config import ReportConfig


def report_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    pruned = upstream.get("prune", [])
    if not config.report.enabled or not pruned:
        return []
    return [Cell("report", "", {}, {cell.cell: cell.ref for cell in pruned}, Resources(num_cpus=1))]


def run_report_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_report

    run_report(ctx)


REPORT = Stage(
    name="report",
    version="1",
    deps=("prune",),
    cells=report_cells,
    run="sparsepipe.workers.report.stage:run_report_cell",
    description="every circuit in one table, figure and browsable index",
    config={"report": ReportConfig},
    provides=("report",),
)
