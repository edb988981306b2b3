"""Exact Gaussian-process regression in numpy/scipy (float64) for the CARBS surrogates.

Kernel: ARD Matérn-3/2 plus a linear term on centred inputs, as upstream CARBS does (the HEBO
choice), but with the linear term centred on the training inputs: upstream's uncentred linear
kernel makes the prior depend on where the basic origin happens to lie (lr=1e-4 sits at b=-8).

Hyperparameters are MAP estimates: log-normal priors plus the marginal likelihood, maximised by
L-BFGS-B with analytic gradients on at most `max_points` observations (the most recent ones).
That bounds fitting cost at O(max_points^3) however long the run gets; the posterior itself is
then conditioned on every observation.  Upstream's 1000 Adam steps at lr 1e-4 barely moved its
hyperparameters away from their initial values; these fits converge, typically in 15-25 iterations.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.linalg.lapack import dpotrf, dpotri
from scipy.optimize import minimize

JITTER = 1e-6
SQRT3 = np.sqrt(3.0)

# Priors are normal in log space: (median, log-std).  Targets are standardised to unit variance,
# inputs are in basic units (one unit ~ one "meaningful" change of a hyperparameter).
LENGTHSCALE_PRIOR = (1.0, 1.0)
MATERN_VARIANCE_PRIOR = (1.0, 1.0)
LINEAR_VARIANCE_PRIOR = (0.1, 1.5)
NOISE_VARIANCE_PRIOR = (0.01, 1.5)

LOG_LENGTHSCALE_BOUNDS = (np.log(0.02), np.log(50.0))
LOG_MATERN_VARIANCE_BOUNDS = (np.log(1e-2), np.log(1e2))
LOG_LINEAR_VARIANCE_BOUNDS = (np.log(1e-6), np.log(1e2))
LOG_NOISE_VARIANCE_BOUNDS = (np.log(1e-6), np.log(2.0))


@dataclass(frozen=True)
class KernelParams:
    """Kernel hyperparameters; `log_vector` is [log lengthscales..., log matern var, log linear var, log noise var]."""

    log_vector: np.ndarray

    @property
    def lengthscales(self) -> np.ndarray:
        return np.exp(self.log_vector[:-3])

    @property
    def matern_variance(self) -> float:
        return float(np.exp(self.log_vector[-3]))

    @property
    def linear_variance(self) -> float:
        return float(np.exp(self.log_vector[-2]))

    @property
    def noise_variance(self) -> float:
        return float(np.exp(self.log_vector[-1]))


def _prior_arrays(dim: int) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    priors = [LENGTHSCALE_PRIOR] * dim + [MATERN_VARIANCE_PRIOR, LINEAR_VARIANCE_PRIOR, NOISE_VARIANCE_PRIOR]
    mean = np.log([median for median, _ in priors])
    std = np.array([log_std for _, log_std in priors])
    bounds = [LOG_LENGTHSCALE_BOUNDS] * dim + [
        LOG_MATERN_VARIANCE_BOUNDS,
        LOG_LINEAR_VARIANCE_BOUNDS,
        LOG_NOISE_VARIANCE_BOUNDS,
    ]
    return mean, std, bounds


def _matern32(scaled_sq_dist: np.ndarray) -> np.ndarray:
    r = SQRT3 * np.sqrt(scaled_sq_dist)
    return (1.0 + r) * np.exp(-r)


def _scaled_sq_dist(a: np.ndarray, b: np.ndarray, lengthscales: np.ndarray) -> np.ndarray:  # (m, d), (n, d) -> (m, n)
    a, b = a / lengthscales, b / lengthscales
    sq = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(sq, 0.0)


def _cross_kernel(a: np.ndarray, b: np.ndarray, params: KernelParams, center: np.ndarray) -> np.ndarray:
    matern = params.matern_variance * _matern32(_scaled_sq_dist(a, b, params.lengthscales))
    return matern + params.linear_variance * (a - center) @ (b - center).T


def _negative_log_posterior(
    log_vector: np.ndarray,
    sq_diff: np.ndarray,
    gram: np.ndarray,
    y: np.ndarray,
    prior_mean: np.ndarray,
    prior_std: np.ndarray,
) -> tuple[float, np.ndarray]:
    """-(log marginal likelihood + log prior) and its gradient in log space.

    sq_diff: (d, n*n) per-dimension squared input differences; gram: (n, n) linear-kernel Gram matrix.
    """
    n = y.shape[0]
    params = KernelParams(log_vector)
    inv_sq_lengthscales = params.lengthscales**-2
    r = SQRT3 * np.sqrt(inv_sq_lengthscales @ sq_diff).reshape(n, n)
    decay = np.exp(-r)
    matern = params.matern_variance * (1.0 + r) * decay
    k = matern + params.linear_variance * gram
    k[np.diag_indices(n)] += params.noise_variance + JITTER
    chol, info = dpotrf(k, lower=1, clean=0, overwrite_a=1)
    if info != 0:
        return 1e25, np.zeros_like(log_vector)
    alpha = cho_solve((chol, True), y, check_finite=False)
    z = (log_vector - prior_mean) / prior_std
    value = 0.5 * y @ alpha + np.log(np.diag(chol)).sum() + 0.5 * n * np.log(2 * np.pi) + 0.5 * z @ z

    # d(log ML)/d(theta) = 0.5 * sum(W * dK/d(theta)) with W = alpha alpha^T - K^-1
    k_inv, _ = dpotri(chol, lower=1)
    k_inv = np.tril(k_inv) + np.tril(k_inv, -1).T  # dpotri fills one triangle only
    w = np.outer(alpha, alpha) - k_inv
    grad = np.empty_like(log_vector)
    # Matérn-3/2: dk/d(log l_i) = 3 * var * exp(-r) * (diff_i / l_i)^2
    grad[:-3] = -1.5 * params.matern_variance * inv_sq_lengthscales * (sq_diff @ (w * decay).ravel())
    grad[-3] = -0.5 * np.sum(w * matern)
    grad[-2] = -0.5 * params.linear_variance * np.sum(w * gram)
    grad[-1] = -0.5 * params.noise_variance * np.trace(w)
    return float(value), grad + z / prior_std


def fit_kernel_params(x: np.ndarray, y: np.ndarray, max_points: int = 128, max_iterations: int = 30) -> KernelParams:
    """MAP kernel hyperparameters for targets `y` (standardised here) at inputs `x` (n, d)."""
    x, y = x[-max_points:], y[-max_points:]
    y = (y - y.mean()) / _safe_std(y)
    centred = x - x.mean(axis=0)
    sq_diff = ((x.T[:, :, None] - x.T[:, None, :]) ** 2).reshape(x.shape[1], -1)  # (d, n*n)
    prior_mean, prior_std, bounds = _prior_arrays(x.shape[1])
    result = minimize(
        _negative_log_posterior,
        prior_mean.copy(),
        args=(sq_diff, centred @ centred.T, y, prior_mean, prior_std),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iterations},
    )
    log_vector = result.x if np.all(np.isfinite(result.x)) else prior_mean
    return KernelParams(log_vector)


def _safe_std(y: np.ndarray) -> float:
    std = float(np.std(y))
    return std if std > 1e-12 else 1.0


class GaussianProcess:
    """GP posterior on fixed hyperparameters; targets are standardised with the training data's mean and std."""

    def __init__(self, x: np.ndarray, y: np.ndarray, params: KernelParams):
        self.params = params
        self.center = x.mean(axis=0)
        self.y_mean = float(y.mean())
        self.y_std = _safe_std(y)
        self.x = x
        self._y_standard = (y - self.y_mean) / self.y_std
        k = _cross_kernel(x, x, params, self.center)
        k[np.diag_indices_from(k)] += params.noise_variance + JITTER
        self._chol = _robust_cholesky(k)
        self._alpha = cho_solve((self._chol, True), self._y_standard, check_finite=False)

    def predict(self, x_query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the noiseless function at each row of `x_query`."""
        cross = _cross_kernel(x_query, self.x, self.params, self.center)  # (m, n)
        mean = cross @ self._alpha
        v = solve_triangular(self._chol, cross.T, lower=True, check_finite=False)  # (n, m)
        prior_var = self.params.matern_variance + self.params.linear_variance * np.sum(
            (x_query - self.center) ** 2, axis=1
        )
        var = np.maximum(prior_var - np.sum(v * v, axis=0), 1e-12)
        return self.y_mean + self.y_std * mean, self.y_std**2 * var

    @property
    def noise_variance(self) -> float:
        return self.params.noise_variance * self.y_std**2

    def sample_joint(self, x_query: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw of the noiseless function at all rows of `x_query` jointly (a Thompson sample)."""
        cross = _cross_kernel(x_query, self.x, self.params, self.center)
        v = solve_triangular(self._chol, cross.T, lower=True, check_finite=False)
        cov = _cross_kernel(x_query, x_query, self.params, self.center) - v.T @ v
        mean = cross @ self._alpha
        draw = mean + _robust_cholesky(cov) @ rng.standard_normal(x_query.shape[0])
        return self.y_mean + self.y_std * draw

    def condition_on(self, x_new: np.ndarray, y_new: np.ndarray) -> GaussianProcess:
        """A GP that also observed (x_new, y_new), as noisy data, with the same hyperparameters and scaling.

        Extends the Cholesky factor by a block instead of refactorising: O(n^2 m) instead of O(n^3).
        """
        cross = _cross_kernel(self.x, x_new, self.params, self.center)  # (n, m)
        block = solve_triangular(self._chol, cross, lower=True, check_finite=False)  # (n, m)
        k_new = _cross_kernel(x_new, x_new, self.params, self.center)
        k_new[np.diag_indices_from(k_new)] += self.params.noise_variance + JITTER
        corner = _robust_cholesky(k_new - block.T @ block)
        n, m = self.x.shape[0], x_new.shape[0]
        chol = np.zeros((n + m, n + m))
        chol[:n, :n] = self._chol
        chol[n:, :n] = block.T
        chol[n:, n:] = corner

        conditioned = copy.copy(self)  # same hyperparameters, centre and target scaling
        conditioned.x = np.vstack([self.x, x_new])
        conditioned._y_standard = np.concatenate([self._y_standard, (y_new - self.y_mean) / self.y_std])
        conditioned._chol = chol
        conditioned._alpha = cho_solve((chol, True), conditioned._y_standard, check_finite=False)
        return conditioned


def _robust_cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, adding diagonal jitter (growing tenfold) until the matrix factorises."""
    jitter = 0.0
    scale = max(float(np.mean(np.diag(matrix))), 1e-12)
    for _ in range(8):
        try:
            return cholesky(matrix + jitter * np.eye(matrix.shape[0]), lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            jitter = scale * 1e-9 if jitter == 0.0 else jitter * 10.0
    raise np.linalg.LinAlgError(f"matrix is not positive definite even with jitter {jitter:.2e}")


@functools.cache
def _openblas_thread_setters() -> tuple[tuple[Callable[[], int], Callable[[int], None]], ...]:
    """(get, set) thread-count functions of every OpenBLAS loaded in this process (numpy and scipy each bundle one).

    Found through /proc/self/maps, so on other systems this is empty and limiting is a no-op.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return ()
    setters = []
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("", ""), ("scipy_", "64_"), ("scipy_", ""), ("", "64_")):
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                setters.append((get, set_))
                break
    return tuple(setters)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS/LAPACK single-threaded inside the block.

    Our matrices are at most a few hundred wide; a second OpenBLAS thread gains nothing there,
    and on a busy 2-core machine (trials running beside the tuner) its spin-waiting made
    suggest() ~10x slower (measured: 96 suggestions took 13.8 s instead of 1.2 s).
    """
    setters = _openblas_thread_setters()
    previous = [get() for get, _ in setters]
    for _, set_ in setters:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), count in zip(setters, previous):
            set_(count)
