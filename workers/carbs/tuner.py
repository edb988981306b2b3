"""CARBS: cost-aware Pareto-region Bayesian search (Fetterman et al. 2023, arXiv 2306.08055).

The paper tunes its pruning hyperparameters with CARBS (Appendix A.5): 32 iterations of 8
parallel trials, starting from the centres of Table 2.  This is our own numpy/scipy
implementation of the algorithm as the upstream code (imbue-ai/carbs) runs it, without its
torch/pyro/wandb stack and without its bugs (global reseeding, pickle checkpoints, the
variance-as-std failure model); see the project's reference notes on CARBS (reference/carbs.md).

One suggestion, in order of precedence:
1. random phase: until `num_random_samples` runs succeeded, sample around the search centre;
2. resample: every `resample_frequency` successes, repeat the least-sampled Pareto point;
3. model: sample candidates around the Pareto front, score them with
   expected improvement over the front x search density x P(success) x [predicted cost < cap],
   with outstanding suggestions conditioned on as Thompson fantasies, and suggest the best.

    tuner = Carbs([Param("lr", LogSpace(scale=0.5), 3e-3), ...], CarbsConfig(better_direction_sign=-1, seed=0))
    suggestion = tuner.suggest()                 # Suggestion(id, params, ...)
    tuner.observe(ObservationInput(suggestion.id, output=loss, cost=seconds))
    text = tuner.to_json(); tuner = Carbs.from_json(text)   # continues identically
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .gp import single_threaded_blas
from .pareto import ObservationGroup, group_observations, pareto_groups, same_point
from .space import (
    LinearSpace,
    LogitSpace,
    LogSpace,
    Param,
    RealSpace,
    SearchSpace,
)
from .surrogate import Surrogate, log_expected_improvement

__all__ = [
    "Carbs",
    "CarbsConfig",
    "LinearSpace",
    "LogSpace",
    "LogitSpace",
    "ObservationInput",
    "Param",
    "RealSpace",
    "Suggestion",
]

STATE_FORMAT = "sparsepipe.carbs/1"
# Rejection sampling draws 2x the wanted candidates, then 4x more per retry while too few land in bounds.
MAX_SAMPLING_ROUNDS = 6


@dataclass(kw_only=True)
class CarbsConfig:
    better_direction_sign: int = 1
    """1 to maximise the output, -1 to minimise it."""
    seed: int = 0
    """Seed of the tuner's own numpy Generator; global random state is never touched."""
    num_random_samples: int = 4
    """Successful runs to collect by random search around the search centres before the model takes over."""
    initial_search_radius: float = 0.3
    """Std of the search distribution around the centre and Pareto points, in basic units (see space.py)."""
    exploration_bias: float = 1.0
    """Margin, in output normal-score units, by which expected improvement asks a candidate to beat the front."""
    num_candidates_per_dim: int = 100
    """Candidates scored per suggestion, per hyperparameter."""
    resample_frequency: int = 5
    """Repeat a Pareto point after every this many successes, to average out noise; 0 turns it off."""
    max_suggestion_cost: float | None = None
    """Never suggest a point whose predicted cost is above this (None: no cap)."""
    min_pareto_cost_fraction: float = 0.2
    """Runs cheaper than this quantile of all costs compete for the front's first (cheapest) slot only."""
    conservative_pareto: bool = True
    """Search around repeated Pareto groups in preference to single lucky runs (see pareto.py)."""
    clamp_pareto_value_to_random_cost: bool = True
    """Score each suggestion against the front at a random cost too, which pushes search to the expensive end."""
    min_success_probability_ratio: float = 0.5
    """Skip candidates whose P(success) is below this fraction of the best candidate's (0: upstream behaviour).

    Failures never reach the output model, so a failing region keeps the large expected improvement
    of unexplored space, which a small P(success) factor alone does not outweigh.  Measured on
    bench.failing_lr_problem (5 seeds, 48 sequential runs after the random phase): 10-40% of
    suggestions failed with 0, 6-17% with 0.5; with an optimum on the failure boundary, 70% vs 30%."""
    outstanding_suggestion_estimator: str = "thompson"
    """Fantasy results for suggestions still running: "thompson" (joint posterior sample) or "mean"."""
    gp_max_fit_points: int = 128
    """Kernel hyperparameters are fitted on at most this many (most recent) runs, bounding suggest() latency."""
    gp_max_fit_iterations: int = 30
    """L-BFGS-B iterations per kernel fit."""

    def __post_init__(self) -> None:
        checks = [
            (self.better_direction_sign in (1, -1), "better_direction_sign must be 1 (maximise) or -1 (minimise)"),
            (self.num_random_samples >= 1, "num_random_samples must be >= 1"),
            (self.initial_search_radius > 0, "initial_search_radius must be > 0"),
            (self.num_candidates_per_dim >= 1, "num_candidates_per_dim must be >= 1"),
            (self.resample_frequency >= 0, "resample_frequency must be >= 0 (0 turns resampling off)"),
            (
                self.max_suggestion_cost is None or self.max_suggestion_cost > 0,
                "max_suggestion_cost must be > 0 or None",
            ),
            (0 <= self.min_pareto_cost_fraction <= 1, "min_pareto_cost_fraction must lie in [0, 1]"),
            (0 <= self.min_success_probability_ratio <= 1, "min_success_probability_ratio must lie in [0, 1]"),
            (
                self.outstanding_suggestion_estimator in ("thompson", "mean"),
                'outstanding_suggestion_estimator must be "thompson" or "mean"',
            ),
            (self.gp_max_fit_points >= 2, "gp_max_fit_points must be >= 2"),
            (self.gp_max_fit_iterations >= 1, "gp_max_fit_iterations must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"CarbsConfig: {message}")


@dataclass(frozen=True)
class Suggestion:
    id: str
    params: dict[str, float | int]
    kind: str = "model"
    """How it was chosen: "random" (random phase), "resample" (a repeated Pareto point) or "model"."""
    predictions: dict[str, float] = field(default_factory=dict)
    """For "model" suggestions: predicted output and cost (user units), P(success), expected improvement."""


@dataclass(frozen=True)
class ObservationInput:
    suggestion_id: str
    output: float
    cost: float = 1.0
    is_failure: bool = False
    """Failed runs (and non-finite outputs) only teach the failure model; output and cost are ignored."""


@dataclass(frozen=True)
class Observation:
    suggestion_id: str
    point: np.ndarray  # basic coordinates
    output: float  # as observed (not sign-adjusted); nan for failures
    cost: float
    is_failure: bool

    def to_dict(self) -> dict[str, Any]:
        # JSON has no NaN: a failure's output (and a missing cost) is stored as None.
        return {
            "suggestion_id": self.suggestion_id,
            "point": self.point.tolist(),
            "output": None if self.is_failure else self.output,
            "cost": self.cost if math.isfinite(self.cost) else None,
            "is_failure": self.is_failure,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Observation:
        output = math.nan if data["output"] is None else data["output"]
        cost = math.nan if data["cost"] is None else data["cost"]
        return cls(data["suggestion_id"], np.array(data["point"], dtype=np.float64), output, cost, data["is_failure"])


class Carbs:
    """Ask/tell tuner: `suggest()` a point, run it, `observe()` its output and cost; many may be outstanding."""

    def __init__(self, params: Sequence[Param], config: CarbsConfig | None = None):
        self.config = config if config is not None else CarbsConfig()
        self.space = SearchSpace(tuple(params))
        self.rng = np.random.default_rng(self.config.seed)
        self.observations: list[Observation] = []
        self.outstanding: dict[str, np.ndarray] = {}  # suggestion id -> basic point, in suggestion order
        self.resample_count = 0
        self.suggestion_count = 0

    @property
    def params(self) -> tuple[Param, ...]:
        return self.space.params

    @property
    def num_successes(self) -> int:
        return sum(not o.is_failure for o in self.observations)

    # --- ask / tell --------------------------------------------------------------------------------

    def suggest(self, suggestion_id: str | None = None) -> Suggestion:
        """The next point to run; it stays outstanding (a fantasy for later suggestions) until observed or forgotten."""
        if suggestion_id is None:
            suggestion_id = f"{self.suggestion_count:04d}"
        if suggestion_id in self.outstanding or any(o.suggestion_id == suggestion_id for o in self.observations):
            raise ValueError(f"suggestion id {suggestion_id!r} is already in use")
        predictions: dict[str, float] = {}
        if self.num_successes < self.config.num_random_samples:
            kind = "random"
            point = self._sample_around(self.space.center[None, :], 1)[0][0]
        elif (repeat := self._pareto_point_to_repeat()) is not None:
            kind, point = "resample", repeat
        else:
            kind = "model"
            with single_threaded_blas():
                point, predictions = self._model_point()
        self.outstanding[suggestion_id] = point
        self.suggestion_count += 1
        return Suggestion(suggestion_id, self.space.to_user(point), kind, predictions)

    def observe(self, observation: ObservationInput) -> None:
        """Record the result of an outstanding suggestion."""
        if observation.suggestion_id not in self.outstanding:
            raise KeyError(
                f"no outstanding suggestion {observation.suggestion_id!r}; outstanding: {sorted(self.outstanding)}"
            )
        is_failure = bool(observation.is_failure) or not math.isfinite(observation.output)
        if not is_failure and not (math.isfinite(observation.cost) and observation.cost > 0):
            raise ValueError(f"cost of a successful run must be finite and > 0, got {observation.cost}")
        point = self.outstanding.pop(observation.suggestion_id)
        output = math.nan if is_failure else float(observation.output)
        self.observations.append(
            Observation(observation.suggestion_id, point, output, float(observation.cost), is_failure)
        )

    def forget(self, suggestion_id: str) -> None:
        """Drop an outstanding suggestion that will never be observed (e.g. its run was lost)."""
        del self.outstanding[suggestion_id]

    def outstanding_params(self) -> dict[str, dict[str, float | int]]:
        """Params of every suggestion not yet observed, by id: what to relaunch after a restart."""
        return {key: self.space.to_user(point) for key, point in self.outstanding.items()}

    # --- results -----------------------------------------------------------------------------------

    def best(self) -> dict[str, Any] | None:
        """The best successful run so far: suggestion_id, params, output, cost."""
        successes = [o for o in self.observations if not o.is_failure]
        if not successes:
            return None
        best = max(successes, key=lambda o: o.output * self.config.better_direction_sign)
        return {
            "suggestion_id": best.suggestion_id,
            "params": self.space.to_user(best.point),
            "output": best.output,
            "cost": best.cost,
        }

    def pareto_front(self) -> list[dict[str, Any]]:
        """The (conservative) Pareto groups, cheapest first: params, mean output, mean cost, number of runs."""
        if self.num_successes == 0:
            return []
        sign = self.config.better_direction_sign
        return [
            {"params": self.space.to_user(g.point), "output": g.output * sign, "cost": g.cost, "runs": g.size}
            for g in self._pareto_front(self.config.conservative_pareto)
        ]

    # --- suggestion strategies ---------------------------------------------------------------------

    def _observation_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points (n, d), higher-is-better outputs, costs and failure flags of all runs, in observation order."""
        points = np.array([o.point for o in self.observations]).reshape(len(self.observations), self.space.dim)
        outputs = np.array([o.output for o in self.observations]) * self.config.better_direction_sign
        costs = np.array([o.cost for o in self.observations])
        return points, outputs, costs, np.array([o.is_failure for o in self.observations], dtype=bool)

    def _pareto_front(self, conservative: bool) -> list[ObservationGroup]:
        points, outputs, costs, is_failure = self._observation_arrays()
        success = ~is_failure
        groups = group_observations(points[success], outputs[success], costs[success])
        return pareto_groups(groups, self.config.min_pareto_cost_fraction, conservative)

    def _outstanding_points(self) -> np.ndarray:
        return np.array(list(self.outstanding.values())).reshape(len(self.outstanding), self.space.dim)

    def _sample_around(self, origins: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to `count` in-bounds points drawn from N(origin, r^2) around randomly chosen origins.

        Returns the points (integer dims rounded) and the log search density of each: a normal in
        the distance to the nearest origin, taken before rounding.  Points equal to an outstanding
        suggestion are dropped, so a batch never runs the same configuration twice.
        """
        radius = self.config.initial_search_radius
        outstanding = self._outstanding_points()
        points, log_density = [], []
        found, draws = 0, 2 * count
        for _ in range(MAX_SAMPLING_ROUNDS):
            raw = origins[self.rng.integers(len(origins), size=draws)] + radius * self.rng.standard_normal(
                (draws, self.space.dim)
            )
            nearest_sq = np.min(np.sum((raw[:, None, :] - origins[None, :, :]) ** 2, axis=-1), axis=1)
            rounded = self.space.round(raw)
            valid = self.space.contains(rounded)
            if len(outstanding):
                valid &= ~np.any(same_point(rounded[:, None, :], outstanding), axis=1)
            points.append(rounded[valid])
            log_density.append(-0.5 * nearest_sq[valid] / radius**2)
            found += int(valid.sum())
            if found >= count:
                break
            draws *= 4
        if found == 0:
            raise RuntimeError(
                f"no point within the bounds found near the search origins after {MAX_SAMPLING_ROUNDS} rounds; "
                "check that search centres are not on a bound and that initial_search_radius suits the spaces' scales"
            )
        return np.concatenate(points)[:count], np.concatenate(log_density)[:count]

    def _pareto_point_to_repeat(self) -> np.ndarray | None:
        """When a resample is due (after 6, 11, 16, ... successes for frequency 5), the cheapest
        non-conservative Pareto point with the fewest runs; None when none is due or every Pareto
        point is already being repeated (a batch never runs one configuration twice)."""
        frequency = self.config.resample_frequency
        if frequency == 0 or self.num_successes <= (self.resample_count + 1) * frequency:
            return None
        outstanding = self._outstanding_points()
        front = [g for g in self._pareto_front(conservative=False) if not same_point(outstanding, g.point).any()]
        if not front:
            return None
        self.resample_count += 1
        return min(front, key=lambda g: g.size).point.copy()  # min() keeps the first, i.e. cheapest, of ties

    def _model_point(self) -> tuple[np.ndarray, dict[str, float]]:
        config = self.config
        surrogate = Surrogate(*self._observation_arrays(), config.gp_max_fit_points, config.gp_max_fit_iterations)
        if self.outstanding:
            surrogate.add_outstanding(self._outstanding_points(), config.outstanding_suggestion_estimator, self.rng)

        front = self._pareto_front(config.conservative_pareto)
        candidates, log_density = self._sample_around(
            np.stack([g.point for g in front]), config.num_candidates_per_dim * self.space.dim
        )
        predicted = surrogate.predict(candidates)

        # The front as a piecewise-linear curve from scaled cost to output score, flat beyond its ends.
        front_costs = surrogate.cost_scale(np.array([g.cost for g in front]))
        front_scores = surrogate.output_scores(np.array([g.output for g in front]))
        reference = np.interp(predicted.cost_scaled, front_costs, front_scores)
        if config.clamp_pareto_value_to_random_cost:
            high = front_costs[-1]
            if config.max_suggestion_cost is not None:
                high = max(front_costs[0], min(high, float(surrogate.cost_scale(config.max_suggestion_cost))))
            target_cost = self.rng.uniform(front_costs[0], high)
            reference = np.maximum(reference, np.interp(target_cost, front_costs, front_scores))

        log_ei = log_expected_improvement(
            predicted.output_score, predicted.output_score_std, reference, config.exploration_bias
        )
        best = self._best_candidate(log_ei + log_density, predicted.log_success_probability, predicted.cost)
        sign = config.better_direction_sign
        predictions = {
            "output": float(surrogate.output_scores.inverse(predicted.output_score[best])) * sign,
            "cost": float(predicted.cost[best]),
            "success_probability": float(np.exp(predicted.log_success_probability[best])),
            "expected_improvement": float(np.exp(log_ei[best])),
        }
        return candidates[best], predictions

    def _best_candidate(self, log_acquisition: np.ndarray, log_success: np.ndarray, cost: np.ndarray) -> int:
        """argmax of acquisition x P(success) over candidates that are affordable and not likely to fail."""
        ratio = self.config.min_success_probability_ratio
        allowed = log_success >= log_success.max() + (np.log(ratio) if ratio > 0 else -np.inf)
        cap = self.config.max_suggestion_cost
        if cap is not None:
            affordable = cost < cap
            if not affordable.any():
                return int(np.argmin(cost))  # nothing predicted affordable: the cheapest is the best we can do
            allowed = allowed & affordable if (allowed & affordable).any() else affordable
        return int(np.argmax(np.where(allowed, log_acquisition + log_success, -np.inf)))

    # --- state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this tuner is (JSON-serialisable)."""
        return {
            "format": STATE_FORMAT,
            "config": asdict(self.config),
            "params": [p.to_dict() for p in self.params],
            "observations": [o.to_dict() for o in self.observations],
            "outstanding": {key: point.tolist() for key, point in self.outstanding.items()},
            "resample_count": self.resample_count,
            "suggestion_count": self.suggestion_count,
            "rng": self.rng.bit_generator.state,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Carbs:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a CARBS state of format {STATE_FORMAT!r}: format is {state.get('format')!r}")
        tuner = cls([Param.from_dict(p) for p in state["params"]], CarbsConfig(**state["config"]))
        tuner.observations = [Observation.from_dict(o) for o in state["observations"]]
        tuner.outstanding = {key: np.array(point, dtype=np.float64) for key, point in state["outstanding"].items()}
        tuner.resample_count = state["resample_count"]
        tuner.suggestion_count = state["suggestion_count"]
        tuner.rng.bit_generator.state = state["rng"]
        return tuner

    def to_json(self) -> str:
        return json.dumps(self.state_dict())

    @classmethod
    def from_json(cls, text: str) -> Carbs:
        return cls.from_state_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        """Write the JSON state atomically (a crash mid-write leaves the previous file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> Carbs:
        return cls.from_json(Path(path).read_text())
