"""PNG figures, one style for every stage: matplotlib's object API on an Agg canvas, no pyplot global state.

    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    ...
    save(fig, path)

Every figure is also data: `save_data(rows, path)` writes the numbers behind a plot as
`path.json` and `path.csv` beside `path.png`.

Figures are plain `matplotlib.figure.Figure` objects owned by the caller, so
nothing is registered globally, nothing needs closing, and concurrent workers
in one process never share a current figure.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110
GRID_ALPHA = 0.3
LEGEND_FONTSIZE = 8


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    """A figure with its own Agg canvas and constrained layout."""
    fig = Figure(figsize=(width, height), constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI)


def save_data(rows: list[dict[str, Any]], path: Path) -> None:
    """The numbers behind the figure at `path` (its .png) as `<stem>.json` (a list of rows) and `<stem>.csv`
    (one column per key, in first-seen order; nested values as JSON)."""
    path = Path(path)
    path.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in row.items()}
            )
