"""`sparsepipe status --running [--watch] [--json]`: every cell in progress, from the store's live records.

Reads only the store (pipeline/live.py), so it shows a detached run or a cluster's cells from any machine that
reaches the store. Columns: the cell, its step (completed/total), the last scalars it reported (losses),
throughput, ETA, the age of its record and its host; a cell whose record stopped updating is marked stale.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich import box
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from .console import out
from .live import STALE, running_cells
from .store import Store

WATCH_INTERVAL_S = 2.0
SCALARS_SHOWN = 3


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _step(record: dict[str, Any]) -> str:
    completed, total = record.get("completed"), record.get("total")
    if completed is None:
        return "-"
    return f"{completed}/{total}" if total else str(completed)


def _scalars(record: dict[str, Any]) -> str:
    shown = list(record.get("scalars", {}).items())[:SCALARS_SHOWN]
    text = " ".join(f"{name}={value:.4g}" for name, value in shown)
    return text or record.get("description") or ""


def running_table(records: list[dict[str, Any]], store_url: str) -> Table:
    table = Table(title=f"cells in progress in {store_url}", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("cell", "step", "last", "steps/s", "ETA", "updated", "host"):
        table.add_column(column, overflow="fold" if column in ("cell", "last") else "ellipsis")
    for record in records:
        label = f"{record['stage']}/{record['cell']}" if record.get("cell") else record["stage"]
        stale = " [red](stale)[/]" if record["state"] == STALE else ""
        rate = record.get("steps_per_s")
        table.add_row(
            escape(label) + stale,
            _step(record),
            escape(_scalars(record)),
            f"{rate:.3g}" if rate else "-",
            _duration(record.get("eta_s")),
            _duration(record.get("age_s")) + " ago",
            f"{record.get('host', '?')}:{record.get('pid', '?')}",
        )
    if not records:
        table.caption = "no cell in progress"
    return table


def show_running(store: Store, watch: bool, as_json: bool, interval_s: float = WATCH_INTERVAL_S) -> None:
    """Print the running cells once, or (--watch) refresh until interrupted; --json prints one JSON document per
    refresh (one line each with --watch)."""
    url = store.spec.url
    if as_json:
        while True:
            records = running_cells(store)
            document = {"store": url, "running": records}
            print(json.dumps(document) if watch else json.dumps(document, indent=2), flush=True)
            if not watch:
                return
            time.sleep(interval_s)
    if not watch:
        out.print(running_table(running_cells(store), url))
        return
    with Live(running_table(running_cells(store), url), console=out, auto_refresh=False) as live:
        while True:
            time.sleep(interval_s)
            live.update(running_table(running_cells(store), url), refresh=True)
