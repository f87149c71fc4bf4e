"""The forward process q(x_t | x_0) (DDPM eq. 4) against the composition of its one-step Gaussians."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from test_diffusion_reference import (batch_shapes, beta_schedules, dtypes, ref_alpha_bar, ref_marginal,
                                      seeds, tolerance)
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.schedules import make_beta_schedule


@given(beta_schedules())
def test_alphas_cumprod_is_the_composed_signal_scale(betas):
    """alphas_cumprod[t] = prod(alphas[:t+1]): the squared mean coefficient of x_t given x_0,
    from composing t+1 one-step maps; alphas_cumprod_prev shifts it and starts at 1."""
    d = GaussianDiffusion(betas)
    expected = ref_alpha_bar(betas)
    np.testing.assert_allclose(d.alphas_cumprod, expected, rtol=1e-12)
    np.testing.assert_allclose(d.alphas_cumprod_prev, [1.0] + expected[:-1], rtol=1e-12)
    for name in ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance",
                 "posterior_mean_coef1", "posterior_mean_coef2", "sqrt_alphas_cumprod",
                 "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
                 "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
                 "posterior_log_variance_clipped"):
        arr = getattr(d, name)
        assert arr.shape == (len(betas),) and arr.dtype == np.float64 and not arr.flags.writeable


@given(beta_schedules(), st.data(), batch_shapes, dtypes, seeds)
def test_q_mean_variance_equals_composed_one_step_gaussians(betas, data, shape, dtype, seed):
    """Eq. 4, mean sqrt(alpha_bar_t) x_0 and variance (1 - alpha_bar_t), against the step-by-step
    loop m <- sqrt(1 - b) m, v <- (1 - b) v + b over the betas up to t."""
    T = len(betas)
    d = GaussianDiffusion(betas)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, T, size=shape[0])
    t[0] = data.draw(st.integers(0, T - 1))  # also let hypothesis steer one row (edges 0, T-1)
    mean, var = d.q_mean_variance(x0, t)
    assert mean.dtype == dtype and var.dtype == dtype and mean.shape == shape and var.shape == shape
    for i in range(shape[0]):
        c, v = ref_marginal(betas, int(t[i]))
        np.testing.assert_allclose(mean[i], c * x0[i].astype(np.float64), rtol=tolerance(dtype),
                                   atol=tolerance(dtype))
        np.testing.assert_allclose(var[i], v, rtol=tolerance(dtype))
    # an int t means the same timestep for every row
    mean_int, var_int = d.q_mean_variance(x0, int(t[0]))
    np.testing.assert_array_equal(mean_int[0], mean[0])
    np.testing.assert_array_equal(var_int[0], var[0])


@given(beta_schedules(max_T=300), st.data(), seeds)
def test_q_sample_has_the_distribution_of_the_markov_chain(betas, data, seed):
    """Monte Carlo: run x_s = sqrt(1 - b_s) x_{s-1} + sqrt(b_s) z_s for s <= t on N copies of x_0,
    and draw N values of q_sample(x_0, t, eps). Both are N(c x_0, v) samples, so their means differ
    by less than 5 standard errors sqrt(v/N + v/N), and their variances by less than 5 standard
    errors of a sample variance, v sqrt(2/(N-1)) each (a false alarm has probability ~1e-6)."""
    T = len(betas)
    t = data.draw(st.integers(0, T - 1))
    x0_value = data.draw(st.floats(-3, 3))
    N = 4000
    rng = np.random.default_rng(seed)
    chain = np.full(N, x0_value)
    for b in betas[: t + 1]:
        chain = math.sqrt(1 - b) * chain + math.sqrt(b) * rng.standard_normal(N)
    d = GaussianDiffusion(betas)
    direct = d.q_sample(np.full(N, x0_value), t, rng.standard_normal(N))
    _, v = ref_marginal(betas, t)
    se_mean = math.sqrt(2 * v / N)
    assert abs(chain.mean() - direct.mean()) < 5 * se_mean
    se_var = v * math.sqrt(2 / (N - 1))
    assert abs(chain.var(ddof=1) - direct.var(ddof=1)) < 5 * math.sqrt(2) * se_var


@given(beta_schedules(), dtypes, seeds)
def test_q_sample_rows_use_their_own_timestep(betas, dtype, seed):
    """An array t selects each row's coefficients: same as calling row by row with int t."""
    T = len(betas)
    d = GaussianDiffusion(betas)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((5, 3, 2)).astype(dtype)
    noise = rng.standard_normal((5, 3, 2)).astype(dtype)
    t = rng.integers(0, T, size=5)
    batched = d.q_sample(x0, t, noise)
    assert batched.dtype == dtype
    for i in range(5):
        np.testing.assert_array_equal(batched[i], d.q_sample(x0[i:i + 1], int(t[i]), noise[i:i + 1])[0])


def test_golden_posterior_variance_linear_T1000():
    """beta_tilde at code index 487 (paper t = 488) of DDPM's linear schedule, computed by hand:
    beta = 1e-4 + 487 * (0.02 - 1e-4) / 999 = 0.0098011, times (1 - alpha_bar_487) / (1 - alpha_bar_488)."""
    d = GaussianDiffusion(make_beta_schedule("linear", 1000))
    assert math.isclose(d.posterior_variance[487], 0.00979, rel_tol=5e-4)
    assert math.isclose(d.betas[487], 0.0098011, rel_tol=1e-4)


def test_variance_is_one_minus_alpha_bar_not_one_minus_alpha():
    """The classic typo: Var q(x_t|x_0) = 1 - alpha_bar_t (DDPM eq. 4), not 1 - alpha_t = beta_t.
    For DDPM's schedule at t = 999 these are 0.99996 and 0.02."""
    d = GaussianDiffusion(make_beta_schedule("linear", 1000))
    _, var = d.q_mean_variance(np.zeros((1, 1)), 999)
    assert math.isclose(var[0, 0], 1 - math.prod(1 - b for b in d.betas), rel_tol=1e-12)
    assert var[0, 0] > 0.9999
