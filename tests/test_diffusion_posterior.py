"""The forward-process posterior q(x_{t-1} | x_t, x_0) (DDPM eqs. 6-7) against Bayes' rule."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given

from test_diffusion_reference import (batch_shapes, beta_schedules, dtypes, ref_alpha_bar, ref_posterior,
                                      seeds, tolerance)
from tinydiff.diffusion import GaussianDiffusion


@given(beta_schedules(), batch_shapes, dtypes, seeds)
def test_posterior_is_bayes_rule_on_the_two_gaussians(betas, shape, dtype, seed):
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): precision-weighted combination in scalars.
    A swap of posterior_mean_coef1/coef2 (x_0's and x_t's weights) fails here."""
    T = len(betas)
    d = GaussianDiffusion(betas)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape).astype(dtype)
    xt = (2 * rng.standard_normal(shape)).astype(dtype)
    t = rng.integers(0, T, size=shape[0])
    mean, var = d.q_posterior_mean_variance(x0, xt, t)
    assert mean.dtype == dtype and var.dtype == dtype and mean.shape == shape and var.shape == shape
    tol = tolerance(dtype)
    for i in range(shape[0]):
        for j, (a, b) in enumerate(zip(x0[i].ravel().tolist(), xt[i].ravel().tolist())):
            m_ref, v_ref = ref_posterior(betas, int(t[i]), a, b)
            assert math.isclose(mean[i].ravel()[j], m_ref, rel_tol=tol, abs_tol=tol * (abs(a) + abs(b)))
            assert math.isclose(var[i].ravel()[j], v_ref, rel_tol=tol)


@given(beta_schedules(), batch_shapes, dtypes, seeds)
def test_posterior_mean_in_eps_form(betas, shape, dtype, seed):
    """With x_t = q_sample(x_0, t, eps), eq. 7's mean equals eq. 11's
    (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t), written here from the betas."""
    T = len(betas)
    d = GaussianDiffusion(betas)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape).astype(dtype)
    eps = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, T, size=shape[0])
    xt = d.q_sample(x0, t, eps)
    mean, _ = d.q_posterior_mean_variance(x0, xt, t)
    ab = ref_alpha_bar(betas)
    for i in range(shape[0]):
        b = betas[t[i]]
        expected = (xt[i].astype(np.float64) - b / math.sqrt(1 - ab[t[i]]) * eps[i]) / math.sqrt(1 - b)
        # float32: x_t is rounded to float32 before either formula sees it; the rest is float arithmetic
        # on O(1) values with coefficients at most 1 / sqrt(1 - b) <= 10.
        np.testing.assert_allclose(mean[i], expected, rtol=tolerance(dtype) * 10, atol=tolerance(dtype) * 10)


@given(beta_schedules())
def test_posterior_variance_formula(betas):
    """beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t (eq. 7), with alpha_bar_{-1} = 1."""
    d = GaussianDiffusion(betas)
    ab = [1.0] + ref_alpha_bar(betas)
    expected = [(1 - ab[t]) / (1 - ab[t + 1]) * betas[t] for t in range(len(betas))]
    np.testing.assert_allclose(d.posterior_variance, expected, rtol=1e-9)
    assert d.posterior_variance[0] == 0.0  # x_0 is determined by x_0: no uncertainty left


@given(beta_schedules(), seeds)
def test_posterior_at_first_step_is_x0_exactly(betas, seed):
    """At code t = 0, q(x_{-1}|x_0, x_0) is a point mass: mean x_0 (coef1 = 1, coef2 = 0)."""
    d = GaussianDiffusion(betas)
    rng = np.random.default_rng(seed)
    x0, xt = rng.standard_normal((2, 4, 3))
    mean, var = d.q_posterior_mean_variance(x0, xt, 0)
    np.testing.assert_allclose(mean, x0, rtol=tolerance(np.float64), atol=tolerance(np.float64))
    np.testing.assert_array_equal(var, 0.0)
