"""CARBS finds better values than random search with the same budget, avoids failing regions, and works in batches.

Fixed seeds; assertions compare means and medians over seeds, with margins measured at 10 seeds.
"""

import json
import statistics

import numpy as np
import pytest

from sparsepipe.workers.carbs.bench import (
    best_output,
    bump_problem,
    failing_lr_problem,
    readme_problem,
    run_carbs,
    run_carbs_benchmark,
    run_random_search,
)

pytestmark = pytest.mark.slow


def _best_values(problem, budget, seeds, batch_size):
    carbs = [
        best_output(
            [o.output for o in run_carbs(problem, budget, s, batch_size).observations], problem.better_direction_sign
        )
        for s in seeds
    ]
    random = [best_output(run_random_search(problem, budget, s), problem.better_direction_sign) for s in seeds]
    return carbs, random


@pytest.mark.parametrize("batch_size", [1, 8])
def test_readme_toy_beats_random_search(batch_size):
    """Minimising (log10 lr + 3)^2 * 512 / epochs + noise: CARBS reaches lower losses than random search in 48 runs."""
    carbs, random = _best_values(readme_problem(), 48, range(5), batch_size)
    assert statistics.fmean(carbs) < 0.5 * statistics.fmean(random), (carbs, random)
    assert statistics.median(carbs) < statistics.median(random), (carbs, random)
    assert max(carbs) < 0.1, carbs  # lr found to within ~0.1 decades of 1e-3 on every seed


@pytest.mark.parametrize("batch_size", [1, 8])
def test_noisy_bump_10d_beats_random_search(batch_size):
    """Maximising a noisy 10-D bump from 3 units away: CARBS gets near the top (1.0) in 96 runs, random search
    nowhere."""
    carbs, random = _best_values(bump_problem(), 96, range(4), batch_size)
    assert statistics.median(carbs) > 0.7, carbs
    assert min(carbs) > 0.5, carbs
    assert statistics.fmean(carbs) > 100 * statistics.fmean(random), (carbs, random)


@pytest.mark.parametrize("batch_size, max_failure_fraction", [(1, 0.15), (8, 0.2)])
def test_failing_region_is_avoided(batch_size, max_failure_fraction):
    """Runs with lr > 1e-2 fail; after the random phase few suggestions land there and almost none deep inside."""
    problem = failing_lr_problem()
    failed, deep = [], []
    for seed in range(3):
        after_random_phase = run_carbs(problem, 56, seed, batch_size).observations[8:]
        failed.append(np.mean([o.is_failure for o in after_random_phase]))
        deep.append(np.mean([problem.params[0].space.from_basic(o.point[0]) > 2e-2 for o in after_random_phase]))
    # Without the failure model, 48-75% (sequential) and 12-25% (batch) of these runs fail.
    assert statistics.fmean(failed) <= max_failure_fraction, failed
    assert statistics.fmean(deep) <= 0.05, deep


def test_quick_benchmark_is_json_serialisable():
    """run_carbs_benchmark(quick=True) reports latency at 32/128/256 observations and both toy problems."""
    result = run_carbs_benchmark(quick=True, seeds=1)
    json.dumps(result)
    assert set(result["suggest_latency_median"]) == {"32", "128", "256"}
    assert set(result["toy_problems"]) == {"readme", "bump10"}
    assert result["machine"]["cpu_count"] >= 1
