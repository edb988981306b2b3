"""What a tuned prune cell reports besides its circuit: the best trial, the trial log, trials.jsonl and tuning.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .tuning_trial import TrialRecord

TRIALS_FILE, TUNING_PLOT = "trials.jsonl", "tuning.png"


def best_trial(records: list[TrialRecord]) -> TrialRecord:
    """Fewest edges among trials that reached the target loss; when none did, the lowest loss.

    Uses only val-split results (reached_target, edges, selection_loss): test losses never choose."""
    finished = [r for r in records if r.result is not None]
    if not finished:
        raise ValueError("no trial produced a circuit")
    reached = [r for r in finished if r.reached_target]
    if reached:
        return min(reached, key=lambda r: (r.edges, r.loss, r.id))
    return min(finished, key=lambda r: (r.loss, r.id))


def best_edges_so_far(records: list[TrialRecord], iterations: int) -> list[int | None]:
    """After each iteration (1-based), the fewest edges of any trial that reached the target; None before the first."""
    best: list[int | None] = []
    current: int | None = None
    for iteration in range(1, iterations + 1):
        for record in records:
            if record.iteration == iteration and record.reached_target:
                current = record.edges if current is None else min(current, record.edges)
        best.append(current)
    return best


def _short(value: float) -> float:
    return float(f"{value:.4g}")


def trial_log(records: list[TrialRecord]) -> list[dict[str, Any]]:
    """One short entry per trial for the manifest; trials.jsonl has everything."""
    log = []
    for record in sorted(records, key=lambda r: r.id):
        entry = {
            "id": record.id,
            "iteration": record.iteration,
            "hyper": {name: _short(value) for name, value in record.hyper.items()},
            "nodes": None if record.result is None else record.result["nodes"],
            "edges": record.edges,
            "loss": None if record.loss is None else _short(record.loss),
            "reached_target": record.reached_target,
            "cost": None if record.result is None else record.cost,
            "seconds": round(record.seconds, 3),
            "start": round(record.start, 2),
            "end": round(record.end, 2),
            "host": record.host,
            "node": record.node[:12],
        }
        if record.error is not None:
            entry["error"] = record.error
        log.append(entry)
    return log


def tuning_metrics(records: list[TrialRecord], iterations: int, best: TrialRecord, resumed: int) -> dict[str, Any]:
    return {
        "trials": len(records),
        "iterations": iterations,
        "best_trial": best.id,
        "best_iteration": best.iteration,
        "failed_trials": sum(not r.reached_target for r in records),
        "trials_resumed": resumed,
        "trial_log": trial_log(records),
    }


def write_trials(records: list[TrialRecord], path: Path) -> None:
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in sorted(records, key=lambda r: r.id)))


def plot_tuning(records: list[TrialRecord], iterations: int, task: str, path: Path) -> None:
    """Every trial's circuit size by iteration (x: missed the target) under the best size so far."""
    from matplotlib.ticker import MaxNLocator

    from ..plots import GRID_ALPHA, LEGEND_FONTSIZE, new_figure, save

    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    reached = [r for r in records if r.reached_target]
    missed = [r for r in records if r.result is not None and not r.reached_target]
    ax.plot(
        [r.iteration for r in reached], [r.edges for r in reached], "o", ms=4, alpha=0.7, label="trial reached target"
    )
    ax.plot(
        [r.iteration for r in missed], [r.edges for r in missed], "x", ms=5, color="grey", label="trial missed target"
    )
    best = best_edges_so_far(records, iterations)
    steps = [(i + 1, edges) for i, edges in enumerate(best) if edges is not None]
    if steps:
        ax.step(
            [i for i, _ in steps], [edges for _, edges in steps], where="post", color="tab:red", label="best so far"
        )
    ax.set_yscale("symlog", linthresh=1)  # an empty circuit has 0 edges
    ax.set_xlabel("CARBS iteration")
    ax.set_ylabel("circuit edges")
    ax.set_xlim(0.5, iterations + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{task}: CARBS tuning, {len(records)} trials")
    ax.grid(alpha=GRID_ALPHA, which="both")
    ax.legend(fontsize=LEGEND_FONTSIZE)
    save(fig, path)
