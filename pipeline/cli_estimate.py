"""`sparsepipe plan --estimate [--device NAME]`: the per-cell table, the run's total, the fit check (exit 2)."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from .console import EXIT_USAGE, err, fail, out
from .dag import CellPlan, Registry
from .devices import DEVICE_NAMES, device
from .estimate import estimate_run, summary_lines, table_rows

DEVICE_HELP = (
    f"With --estimate: the device to estimate for, one of {', '.join(DEVICE_NAMES)} (peak FLOP/s, bandwidth "
    "and memory in pipeline/devices.py); cpu is this machine."
)
ESTIMATE_HELP = (
    "Also estimate, per cell to run, its FLOPs, parameter / optimizer / activation memory and time on --device, "
    "and the run's total; exit 2 when a cell cannot fit the device's memory, naming the settings to change."
)


def show_estimate(registry: Registry, config: Any, plans: list[CellPlan], device_name: str, as_json: bool) -> None:
    try:
        target = device(device_name)
    except KeyError as error:
        fail(str(error.args[0]), EXIT_USAGE)
    run = estimate_run(registry, config, plans, target)
    if as_json:
        print(json.dumps(run.as_json(), indent=2))
    else:
        table = Table(title=f"estimate on {target.name}")
        for column in ("stage", "cell", "on", "FLOPs", "params", "optimizer", "activations", "time"):
            table.add_column(column, justify="left" if column in ("stage", "cell", "on") else "right")
        for row in table_rows(run):
            table.add_row(*row)
        out.print(table)
        for line in summary_lines(run):
            out.print(line, soft_wrap=True, highlight=False)
    problems = run.too_big()
    for problem in problems:
        err.print(f"[red]does not fit[/]: {problem}", soft_wrap=True, highlight=False)
    if problems:
        raise SystemExit(EXIT_USAGE)
