"""The surrogate models CARBS scores candidates with: output, cost and failure GPs, and the acquisition terms.

All three GPs work in basic coordinates (see space.py) on transformed targets:
- output: normal scores of the outputs (a rank-based quantile transform; higher is better), so
  outliers and the output's units do not matter;
- cost: log(cost) mapped linearly onto [-1, 1] over the observed range;
- failure: labels -1 (success) / +1 (failure) regressed with the same kernel; P(success) = Phi(-mu/sigma).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtri

from .gp import GaussianProcess, fit_kernel_params


class NormalScores:
    """Monotone map from outputs to standard-normal scores via their empirical CDF (mid-ranks for ties)."""

    def __init__(self, values: np.ndarray):
        self.values, counts = np.unique(values, return_counts=True)
        mid_ranks = np.cumsum(counts) - counts + (counts - 1) / 2.0
        self.scores = ndtri((mid_ranks + 0.5) / len(values))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return np.interp(values, self.values, self.scores)

    def inverse(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.scores, self.values)


class LogCostScale:
    """log(cost) mapped linearly onto [-1, 1] over the observed range (0 when every cost is the same)."""

    def __init__(self, costs: np.ndarray):
        log_costs = np.log(costs)
        self.low, self.high = float(log_costs.min()), float(log_costs.max())

    @property
    def is_constant(self) -> bool:
        return self.high - self.low < 1e-12

    def __call__(self, costs: np.ndarray | float) -> np.ndarray:
        if self.is_constant:
            return np.zeros_like(np.asarray(costs, dtype=np.float64))
        return 2.0 * (np.log(costs) - self.low) / (self.high - self.low) - 1.0

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return np.exp(self.low + (np.asarray(scaled) + 1.0) / 2.0 * (self.high - self.low))


def log_expected_improvement(
    mean: np.ndarray, std: np.ndarray, reference: np.ndarray, exploration_bias: float
) -> np.ndarray:
    """log EI of beating `reference` by `exploration_bias`, stable far into the tail.

    EI = std * (phi(z) + z Phi(z)) = std * phi(z) * (1 + z Phi(z)/phi(z)), z = (mean - reference - bias)/std,
    and Phi(z)/phi(z) = sqrt(pi/2) erfcx(-z/sqrt(2)); in log form EI never underflows to a tie at 0.
    """
    z = (mean - reference - exploration_bias) / std
    ratio = 1.0 + z * np.sqrt(np.pi / 2.0) * erfcx(-z / np.sqrt(2.0))
    return np.log(std) - 0.5 * z * z - 0.5 * np.log(2.0 * np.pi) + np.log(np.maximum(ratio, 1e-300))


@dataclass(frozen=True)
class Predictions:
    output_score: np.ndarray  # posterior mean of the output's normal score (higher is better)
    output_score_std: np.ndarray
    cost_scaled: np.ndarray  # posterior mean of the scaled log cost
    cost: np.ndarray  # the same in cost units
    log_success_probability: np.ndarray


class Surrogate:
    """Output, cost and failure models fitted to one snapshot of the observations."""

    def __init__(
        self,
        points: np.ndarray,
        outputs: np.ndarray,
        costs: np.ndarray,
        is_failure: np.ndarray,
        max_fit_points: int,
        max_fit_iterations: int,
    ):
        """points (n, d) in chronological order; outputs higher-is-better; outputs and costs of failures are ignored."""
        success = ~is_failure
        x, outputs, costs = points[success], outputs[success], costs[success]

        def fit(x_fit: np.ndarray, y_fit: np.ndarray) -> GaussianProcess:
            return GaussianProcess(x_fit, y_fit, fit_kernel_params(x_fit, y_fit, max_fit_points, max_fit_iterations))

        self.output_scores = NormalScores(outputs)
        self.output_gp = fit(x, self.output_scores(outputs))
        self.cost_scale = LogCostScale(costs)
        self.cost_gp = None if self.cost_scale.is_constant else fit(x, self.cost_scale(costs))
        # Without both labels there is nothing to learn: every point is predicted to succeed.
        self.failure_gp = fit(points, np.where(is_failure, 1.0, -1.0)) if success.any() and is_failure.any() else None

    def add_outstanding(self, points: np.ndarray, estimator: str, rng: np.random.Generator) -> None:
        """Condition the output model on fantasy results at suggestions still being evaluated.

        "thompson" draws one joint posterior sample there (so parallel suggestions spread out),
        "mean" uses the posterior mean (kriging believer).  Cost and failure models get no fantasies.
        """
        if estimator == "thompson":
            fantasies = self.output_gp.sample_joint(points, rng)
        else:
            fantasies = self.output_gp.predict(points)[0]
        self.output_gp = self.output_gp.condition_on(points, fantasies)

    def predict(self, x: np.ndarray) -> Predictions:
        mean, var = self.output_gp.predict(x)
        if self.cost_gp is None:
            cost_scaled = np.zeros(len(x))
        else:
            cost_scaled = self.cost_gp.predict(x)[0]
        if self.failure_gp is None:
            log_success = np.zeros(len(x))
        else:
            label_mean, label_var = self.failure_gp.predict(x)
            # Upstream passes the variance where the std belongs; this uses the predictive std.
            log_success = log_ndtr(-label_mean / np.sqrt(label_var + self.failure_gp.noise_variance))
        return Predictions(mean, np.sqrt(var), cost_scaled, self.cost_scale.inverse(cost_scaled), log_success)
