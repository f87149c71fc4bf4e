"""Toy 2D datasets: API contract, reproducibility, population standardisation, exact GMM density."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from tinydiff.data.toy2d import (TOY2D_DATASETS, GaussianMixture2D, sample_toy2d,
                                 toy2d_mixture)

ALL = pytest.mark.parametrize("name", TOY2D_DATASETS)


def test_the_six_families_are_registered():
    assert set(TOY2D_DATASETS) == {"moons", "swissroll", "8gaussians", "circles",
                                   "checkerboard", "gmm"}


@ALL
def test_shape_dtype_finite(name):
    x = sample_toy2d(name, 257, 0)
    assert x.shape == (257, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    assert sample_toy2d(name, 0, 0).shape == (0, 2)


@ALL
def test_same_seed_same_points_and_generator_advances(name):
    np.testing.assert_array_equal(sample_toy2d(name, 100, 7), sample_toy2d(name, 100, 7))
    np.testing.assert_array_equal(sample_toy2d(name, 100, np.random.default_rng(7)),
                                  sample_toy2d(name, 100, 7))
    assert not np.array_equal(sample_toy2d(name, 100, 7), sample_toy2d(name, 100, 8))
    rng = np.random.default_rng(3)
    assert not np.array_equal(sample_toy2d(name, 100, rng), sample_toy2d(name, 100, rng))


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as exc:
        sample_toy2d("spirals", 10, 0)
    for name in TOY2D_DATASETS:
        assert name in str(exc.value)


@pytest.mark.parametrize("bad", [None, 1.5, True, "0"])
def test_rng_must_be_seed_or_generator(bad):
    with pytest.raises(TypeError):
        sample_toy2d("moons", 10, bad)


def test_negative_n_is_an_error():
    with pytest.raises(ValueError):
        sample_toy2d("moons", -1, 0)


@ALL
def test_standardised_by_population_moments(name):
    """Mean 0 and variance 1 per axis, within 5 standard errors estimated from the sample.

    At n = 400k the standard error of a variance is about 0.002-0.003, so this checks the
    closed-form population constants: a 1% error in a standard deviation would fail clearly.
    """
    n = 400_000
    x = sample_toy2d(name, n, 12345).astype(np.float64)
    mean = x.mean(axis=0)
    centred_sq = (x - mean) ** 2
    var = centred_sq.mean(axis=0)
    se_mean = np.sqrt(var / n)
    se_var = centred_sq.std(axis=0) / math.sqrt(n)   # sqrt((mu4 - sigma^4) / n)
    assert np.all(np.abs(mean) < 5 * se_mean), (mean, se_mean)
    assert np.all(np.abs(var - 1) < 5 * se_var), (var, se_var)


@ALL
def test_not_standardised_per_batch(name):
    """A small batch keeps its sampling fluctuation: it was not re-centred on its own mean."""
    x = sample_toy2d(name, 50, 1).astype(np.float64)
    assert np.abs(x.mean(axis=0)).max() > 1e-4
    assert np.abs(x.std(axis=0) - 1).max() > 1e-4


# --------------------------------------------------------------------------- Gaussian mixtures

MIXTURES = pytest.mark.parametrize("name", ["gmm", "8gaussians"])


@MIXTURES
def test_mixture_parameters_are_exactly_standardised(name):
    mix = toy2d_mixture(name)
    np.testing.assert_allclose(mix.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(np.diag(mix.covariance()), 1, rtol=1e-12)
    assert not mix.means.flags.writeable


def _scipy_log_prob(mix: GaussianMixture2D, x: np.ndarray) -> np.ndarray:
    comps = [math.log(w) + multivariate_normal(m, c).logpdf(x)
             for w, m, c in zip(mix.weights, mix.means, mix.covariances)]
    return logsumexp(np.stack(comps), axis=0)


@MIXTURES
def test_log_prob_matches_scipy_mixture(name):
    mix = toy2d_mixture(name)
    x = np.random.default_rng(0).normal(scale=2.0, size=(500, 2))
    np.testing.assert_allclose(mix.log_prob(x), _scipy_log_prob(mix, x), rtol=1e-10, atol=1e-10)
    assert mix.log_prob(x.reshape(10, 50, 2)).shape == (10, 50)


def _grid(lim: float = 7.0, m: int = 561):
    g = np.linspace(-lim, lim, m)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    return g, np.stack([xx, yy], axis=-1)


@MIXTURES
def test_density_integrates_to_one(name):
    g, pts = _grid()
    dens = np.exp(toy2d_mixture(name).log_prob(pts))
    total = np.trapezoid(np.trapezoid(dens, g, axis=1), g)
    assert abs(total - 1) < 1e-6


def test_samples_follow_the_density():
    """Mass of a quadrant: sample frequency vs the grid integral of exp(log_prob)."""
    mix = toy2d_mixture("gmm")
    g, pts = _grid()
    dens = np.exp(mix.log_prob(pts)) * ((pts[..., 0] > 0) & (pts[..., 1] > 0))
    p = np.trapezoid(np.trapezoid(dens, g, axis=1), g)
    n = 200_000
    x = sample_toy2d("gmm", n, 5)
    freq = np.mean((x[:, 0] > 0) & (x[:, 1] > 0))
    # The grid cuts the quadrant edge at half a cell; 5 binomial standard errors dominates that.
    assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n) + 2e-3


def test_score_is_the_gradient_of_log_prob():
    mix = toy2d_mixture("gmm")
    x = np.random.default_rng(1).normal(size=(200, 2))
    h = 1e-5
    fd = np.stack([(mix.log_prob(x + h * e) - mix.log_prob(x - h * e)) / (2 * h)
                   for e in np.eye(2)], axis=-1)
    np.testing.assert_allclose(mix.score(x), fd, rtol=1e-5, atol=1e-6)


def test_noised_mixture_is_the_forward_marginal():
    """scale*X + sqrt(v)*eps: mean scales, covariance is scale^2 Cov + v I (independence)."""
    mix = toy2d_mixture("gmm")
    ab = 0.3
    q = mix.noised(math.sqrt(ab), 1 - ab)
    np.testing.assert_allclose(q.mean(), math.sqrt(ab) * mix.mean(), atol=1e-12)
    np.testing.assert_allclose(q.covariance(), ab * mix.covariance() + (1 - ab) * np.eye(2),
                               atol=1e-12)
    # Fully noised: the standard normal density, whatever the data.
    x = np.random.default_rng(2).normal(size=(50, 2))
    np.testing.assert_allclose(mix.noised(0.0, 1.0).log_prob(x),
                               multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x), rtol=1e-12)


def test_invalid_mixture_rejected():
    with pytest.raises(ValueError):
        GaussianMixture2D(np.array([0.5, 0.6]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError):
        GaussianMixture2D(np.array([1.0]), np.zeros((1, 2)), -np.eye(2)[None])
    with pytest.raises(ValueError):
        toy2d_mixture("moons")
