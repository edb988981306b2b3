"""Observation groups and Pareto fronts."""

import numpy as np

from sparsepipe.workers.carbs.pareto import group_observations, pareto_groups


def _docstring_example():
    # Upstream's example: A = (0, 1) at cost 1, B = 0.6 at cost 2, C = (0.55, 0.75) at cost 3, D = 0.8 at cost 4.
    points = np.array([[0.0], [0.0], [1.0], [2.0], [2.0], [3.0]])
    outputs = np.array([0.0, 1.0, 0.6, 0.55, 0.75, 0.8])
    costs = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 4.0])
    return group_observations(points, outputs, costs)


def test_groups_collect_repeated_points():
    """Runs at the same input form one group whose output and cost are means."""
    groups = _docstring_example()
    assert [g.size for g in groups] == [2, 1, 2, 1]
    assert [g.output for g in groups] == [0.5, 0.6, 0.65, 0.8]
    assert [g.cost for g in groups] == [1.0, 2.0, 3.0, 4.0]


def test_conservative_front_skips_single_run_below_best_member():
    """Upstream docstring: the conservative front is A, C, D (B does not beat A's best member, 1.0)."""
    front = pareto_groups(_docstring_example(), min_cost_fraction=0.2, conservative=True)
    assert [g.point[0] for g in front] == [0.0, 2.0, 3.0]


def test_plain_front_keeps_every_improvement():
    """Without the conservative rule, A, B, C and D are all on the front."""
    front = pareto_groups(_docstring_example(), min_cost_fraction=0.2, conservative=False)
    assert [g.point[0] for g in front] == [0.0, 1.0, 2.0, 3.0]


def test_cheap_runs_compete_for_first_slot_only():
    """Below the cost quantile only the best group enters; above it the front must improve."""
    points = np.arange(6, dtype=float)[:, None]
    outputs = np.array([0.1, 0.3, 0.2, 0.25, 0.5, 0.4])
    costs = np.array([1.0, 1.0, 1.0, 5.0, 6.0, 7.0])
    front = pareto_groups(group_observations(points, outputs, costs), min_cost_fraction=0.5, conservative=False)
    assert [g.point[0] for g in front] == [1.0, 4.0]
