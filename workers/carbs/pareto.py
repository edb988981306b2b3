"""Observation groups and the cost/performance Pareto front that CARBS searches around.

Outputs here are always "higher is better" (the tuner multiplies by `better_direction_sign` first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObservationGroup:
    """Observations at one input point (repeats of a resampled suggestion)."""

    point: np.ndarray  # (d,) basic coordinates
    members: tuple[int, ...]  # indices into the observation arrays
    outputs: np.ndarray  # (k,) higher is better
    costs: np.ndarray  # (k,)

    @property
    def output(self) -> float:
        return float(self.outputs.mean())

    @property
    def cost(self) -> float:
        return float(self.costs.mean())

    @property
    def best_member_output(self) -> float:
        return float(self.outputs.max())

    @property
    def size(self) -> int:
        return len(self.members)


def same_point(points: np.ndarray, point: np.ndarray) -> np.ndarray:  # (m, d), (d,) -> (m,) bool
    return np.all(np.isclose(points, point), axis=-1)


def group_observations(points: np.ndarray, outputs: np.ndarray, costs: np.ndarray) -> list[ObservationGroup]:
    """Groups of observations whose inputs all match (np.isclose), in order of first appearance."""
    matches = same_point(points[:, None, :], points[None, :, :])  # (n, n)
    groups: list[ObservationGroup] = []
    unassigned = np.ones(len(points), dtype=bool)
    for i in range(len(points)):
        if unassigned[i]:
            members = np.flatnonzero(unassigned & matches[i])
            unassigned[members] = False
            groups.append(ObservationGroup(points[i], tuple(members.tolist()), outputs[members], costs[members]))
    return groups


def pareto_groups(
    groups: list[ObservationGroup], min_cost_fraction: float, conservative: bool
) -> list[ObservationGroup]:
    """The Pareto front over (cost, output), cheapest first.

    Everything cheaper than the `min_cost_fraction` quantile of individual costs competes for the
    first slot only (so a handful of very cheap runs cannot crowd the front).  Above it, each
    group joins when it beats the last group on the front.  With `conservative`, repeated groups
    are preferred below the threshold, and above it a single run must beat the *best member* of
    the last front group, while a repeated group need only beat its mean: a lucky single
    noisy run does not displace a measured point.
    """
    all_costs = np.concatenate([g.costs for g in groups])
    # A group's mean cost can exceed the quantile of individual costs; the cheapest group always qualifies.
    threshold = max(float(np.quantile(all_costs, min_cost_fraction)), min(g.cost for g in groups))
    cheap = [g for g in groups if g.cost <= threshold]
    if conservative and any(g.size > 1 for g in cheap):
        cheap = [g for g in cheap if g.size > 1]
    front = [max(cheap, key=lambda g: g.output)]
    for group in sorted((g for g in groups if g.cost > threshold), key=lambda g: g.cost):
        last = front[-1]
        bar = last.best_member_output if conservative and group.size == 1 else last.output
        if group.output > bar:
            front.append(group)
    return front
