"""The training-curves figure of a pretrain or dense run (style: workers/plots.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plots import GRID_ALPHA, new_figure, save


def plot_training_curves(history: list[dict[str, Any]], bigram_val_loss: float | None, path: Path) -> None:
    """Loss vs step (train, val, bigram baseline) above the weight-L0 and lr schedules."""
    fig = new_figure(8, 6.5)
    loss_ax, l0_ax = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])

    steps = [row["step"] for row in history]
    loss_ax.plot(steps, [row["train_loss"] for row in history], label="train", lw=1)
    evals = [row for row in history if row.get("val_loss") is not None]
    if evals:
        loss_ax.plot([row["step"] for row in evals], [row["val_loss"] for row in evals], "o-", label="val", ms=3)
    if bigram_val_loss is not None:
        loss_ax.axhline(bigram_val_loss, color="grey", ls="--", label=f"bigram baseline (val) {bigram_val_loss:.3f}")
    loss_ax.set_ylabel("cross-entropy (nats)")
    loss_ax.legend()
    loss_ax.grid(alpha=GRID_ALPHA)

    l0_ax.plot(steps, [row["l0"] for row in history], color="tab:green", label="weight L0")
    l0_ax.set_yscale("log")
    l0_ax.set_ylabel("weight L0 (nonzero fraction)")
    l0_ax.set_xlabel("step")
    lr_ax = l0_ax.twinx()
    lr_ax.plot(steps, [row["lr"] for row in history], color="tab:red", lw=1, label="lr")
    lr_ax.set_ylabel("lr")
    l0_ax.legend(loc="upper right")
    lr_ax.legend(loc="center right")
    save(fig, path)
