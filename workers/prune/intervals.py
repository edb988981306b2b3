"""Bootstrap 95% intervals over test pairs for every reported loss of a prune cell.

A reported loss is the mean of one loss per test pair (`losses.pair_losses`, recorded by the trial in
`TrialResult.test_pair_losses`). Resampling the pairs with replacement and taking the 2.5th and 97.5th
percentiles of the resampled means (the percentile bootstrap) says how much the number would move with
another draw of test pairs from the same templates: the interval the report prints beside each loss.
The resampling seed is fixed, so the same pair losses give the same interval in every run.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def bootstrap_interval(
    values: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
) -> list[float] | None:
    """[low, high] of the mean of `values` (percentile bootstrap); None without values."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return None
    draws = np.random.default_rng(seed).integers(0, data.size, size=(resamples, data.size))
    means = data[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def loss_intervals(test_pair_losses: dict[str, Sequence[float]]) -> dict[str, list[float] | None]:
    """{loss name: [low, high]} for every loss the trial recorded per test pair."""
    return {name: bootstrap_interval(values) for name, values in sorted(test_pair_losses.items())}
