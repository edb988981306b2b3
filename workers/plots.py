"""PNG figures, one style for every stage: matplotlib's object API on an Agg canvas, no pyplot global state.

    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    ...
    save(fig, path)

Figures are plain `matplotlib.figure.Figure` objects owned by the caller, so
nothing is registered globally, nothing needs closing, and concurrent workers
in one process never share a current figure.
"""

from __future__ import annotations

from pathlib import Path

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
