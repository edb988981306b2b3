"""The numpy Gaussian process: gradients, posterior, fantasies, transforms."""

import numpy as np
from scipy.optimize import approx_fprime

from sparsepipe.workers.carbs.gp import (
    JITTER,
    GaussianProcess,
    _cross_kernel,
    _negative_log_posterior,
    _prior_arrays,
    fit_kernel_params,
)
from sparsepipe.workers.carbs.surrogate import LogCostScale, NormalScores, log_expected_improvement


def _data(n=30, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] + 0.05 * rng.normal(size=n)
    return x, y


def test_log_posterior_gradient_matches_finite_differences():
    """The analytic gradient of the MAP objective agrees with central differences."""
    x, y = _data()
    y = (y - y.mean()) / y.std()
    centred = x - x.mean(axis=0)
    sq_diff = ((x.T[:, :, None] - x.T[:, None, :]) ** 2).reshape(x.shape[1], -1)
    prior_mean, prior_std, _ = _prior_arrays(x.shape[1])
    theta = prior_mean + np.random.default_rng(1).normal(scale=0.5, size=prior_mean.shape)
    args = (sq_diff, centred @ centred.T, y, prior_mean, prior_std)
    analytic = _negative_log_posterior(theta, *args)[1]
    numeric = approx_fprime(theta, lambda t: _negative_log_posterior(t, *args)[0], 1e-6)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-4)


def test_fitted_gp_interpolates_and_finds_relevant_dims():
    """After fitting, the posterior mean fits the data and the irrelevant dim gets the longest lengthscale."""
    x, y = _data(n=60)
    params = fit_kernel_params(x, y)
    gp = GaussianProcess(x, y, params)
    mean, var = gp.predict(x)
    assert np.sqrt(np.mean((mean - y) ** 2)) < 0.1
    assert np.all(var >= 0)
    assert np.argmax(params.lengthscales) == 2


def test_condition_on_matches_refactorising():
    """Extending the Cholesky factor by a block gives the factor and weights of the full kernel matrix."""
    x, y = _data()
    params = fit_kernel_params(x, y)
    partial = GaussianProcess(x[:25], y[:25], params)
    extended = partial.condition_on(x[25:], y[25:])
    k = _cross_kernel(x, x, params, partial.center)
    k[np.diag_indices_from(k)] += params.noise_variance + JITTER
    np.testing.assert_allclose(extended._chol @ extended._chol.T, k, atol=1e-10)
    np.testing.assert_allclose(k @ extended._alpha, (y - partial.y_mean) / partial.y_std, atol=1e-8)


def test_thompson_samples_are_reproducible_and_shrink_variance():
    """A joint sample depends only on the generator state; conditioning on it shrinks variance there."""
    x, y = _data()
    gp = GaussianProcess(x, y, fit_kernel_params(x, y))
    query = np.random.default_rng(3).normal(size=(8, 3))
    a = gp.sample_joint(query, np.random.default_rng(5))
    b = gp.sample_joint(query, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert np.all(gp.condition_on(query, a).predict(query)[1] < gp.predict(query)[1])


def test_normal_scores_are_monotone_and_tie_aware():
    """Outputs map monotonically to normal scores; ties share a score; inverse maps back."""
    scores = NormalScores(np.array([100.0, 1.0, 2.0, 2.0]))
    mapped = scores(np.array([1.0, 2.0, 100.0]))
    assert np.all(np.diff(mapped) > 0)
    assert abs(mapped[1]) < 1e-12  # the tied middle values share the median rank
    assert mapped[2] == -mapped[0]  # an outlier is just the top rank
    np.testing.assert_allclose(scores.inverse(mapped), [1.0, 2.0, 100.0])


def test_log_cost_scale_maps_range_to_unit_interval():
    """log cost goes to [-1, 1]; a constant cost maps to 0 and inverts to itself."""
    scale = LogCostScale(np.array([1.0, 10.0, 100.0]))
    np.testing.assert_allclose(scale(np.array([1.0, 10.0, 100.0])), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(scale.inverse(np.array([0.0])), [10.0])
    constant = LogCostScale(np.array([4.0, 4.0]))
    assert constant.is_constant and constant(4.0) == 0.0 and constant.inverse(0.0) == 4.0


def test_log_expected_improvement_matches_closed_form_and_is_finite_in_the_tail():
    """log EI equals log(std (z Phi(z) + phi(z))) and stays finite where EI underflows."""
    from scipy.stats import norm

    mean, std, ref = np.array([0.3, -1.0, 0.0]), np.array([0.5, 0.2, 1.0]), np.array([0.0, 0.0, 0.0])
    z = (mean - ref - 0.2) / std
    expected = np.log(std * (z * norm.cdf(z) + norm.pdf(z)))
    np.testing.assert_allclose(log_expected_improvement(mean, std, ref, 0.2), expected, rtol=1e-10)
    tail = log_expected_improvement(np.array([-50.0, -60.0]), np.array([1.0, 1.0]), np.zeros(2), 1.0)
    assert np.all(np.isfinite(tail)) and tail[0] > tail[1]
