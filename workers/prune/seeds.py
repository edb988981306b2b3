"""`prune.seeds`: the final mask training at the chosen hyperparameters, repeated with more seeds.

A circuit found once is one draw: mask initialisation noise and the order of training batches (both from
the trial's seed) change which nodes survive. The cell's written circuit is the chosen trial (CARBS's best,
or the untuned trial); `prune.seeds - 1` more trials run with its hyperparameters and other seeds, and
result.json records each (`seeds`) and the median, min and max of nodes, edges and test circuit loss over
all of them (`seed_spread`). Selection is untouched: the repeats never choose the circuit.
"""

from __future__ import annotations

import statistics
from typing import Any

SEED_STRIDE = 100_003  # repeat seeds sit far from CARBS's trial seeds (prune.seed + trial number)
SEED_FIELDS = (
    "seed",
    "nodes",
    "edges",
    "reached_target",
    "selection_loss",
    "test_reached_target",
    "circuit_loss",
    "full_model_loss",
)
SPREAD_FIELDS = ("nodes", "edges", "circuit_loss")


def repeat_seeds(chosen_seed: int, count: int) -> list[int]:
    """The seeds of the `count - 1` repeats of a trial that ran with `chosen_seed`."""
    return [chosen_seed + SEED_STRIDE * i for i in range(1, count)]


def seed_row(result: dict[str, Any]) -> dict[str, Any]:
    """One seed's line of result.json's `seeds` (from a TrialResult's JSON)."""
    return {key: result[key] for key in SEED_FIELDS}


def seed_spread(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{"nodes"|"edges"|"circuit_loss": {"median", "min", "max"}} over the seeds' rows."""
    spread = {}
    for key in SPREAD_FIELDS:
        values = [row[key] for row in rows if row.get(key) is not None]
        if values:
            spread[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return spread
