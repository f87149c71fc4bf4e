"""End to end: the full samplers driven by an exact (Bayes-optimal) eps predictor.

For Gaussian data N(mu, s^2) the optimal eps(x_t) is affine in x_t, so every reverse step is an
affine map plus Gaussian noise and the distribution of the samples is known exactly by composing
those maps in scalars. That separates the two sources of error a test must allow for: sampling
error (N samples: a standard error) and the deterministic discretisation bias of a finite chain
(computed, and shown to be small). The 2-D Gaussian mixture has no closed-form output law, so its
tolerances add a measured bias allowance to the standard error.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_diffusion_reference import (beta_schedules, gaussian_oracle, gmm_oracle, ref_alpha_bar,
                                      ref_posterior_table, seeds)
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.schedules import ddim_timesteps, make_beta_schedule

MU, S = 0.3, 0.5


def _oracle_affine(ab: float, mu: float, s: float) -> tuple[float, float]:
    """eps*(x) = k x + c at alpha_bar = ab (see gaussian_oracle)."""
    k = math.sqrt(1 - ab) / (ab * s * s + 1 - ab)
    return k, -k * math.sqrt(ab) * mu


def ddpm_output_law(betas, mu, s, variance):
    """(mean, variance) of DDPM's x_0 from x_T ~ N(0, 1) with the oracle: each step is
    x <- (x - beta/sqrt(1 - ab) (k x + c)) / sqrt(1 - beta) + sigma z (Algorithm 2), so the mean maps
    affinely and the variance as A^2 v + sigma^2; sigma = 0 on the last step."""
    ab = ref_alpha_bar(betas)
    posterior = ref_posterior_table(betas)
    m, v = 0.0, 1.0
    for t in range(len(betas) - 1, -1, -1):
        b = float(betas[t])
        k, c = _oracle_affine(ab[t], mu, s)
        g = b / math.sqrt(1 - ab[t])
        A, B = (1 - g * k) / math.sqrt(1 - b), -g * c / math.sqrt(1 - b)
        sigma2 = 0.0 if t == 0 else (b if variance == "fixed_large" else posterior[t][2])
        m, v = A * m + B, A * A * v + sigma2
    return m, v


def ddim_affine_map(betas, seq, mu, s) -> tuple[float, float]:
    """(A, B) with DDIM(eta=0)'s output = A x_T + B along the increasing timesteps ``seq``:
    x0_hat = (x - sqrt(1 - ab) eps) / sqrt(ab), x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps
    (DDIM eq. 12), ab_prev = 1 after seq[0]."""
    ab = ref_alpha_bar(betas)
    A, B = 1.0, 0.0
    for i in range(len(seq) - 1, -1, -1):
        a_t = ab[seq[i]]
        a_prev = ab[seq[i - 1]] if i > 0 else 1.0
        k, c = _oracle_affine(a_t, mu, s)
        x0_a, x0_b = (1 - math.sqrt(1 - a_t) * k) / math.sqrt(a_t), -math.sqrt(1 - a_t) * c / math.sqrt(a_t)
        a = math.sqrt(a_prev) * x0_a + math.sqrt(1 - a_prev) * k
        b = math.sqrt(a_prev) * x0_b + math.sqrt(1 - a_prev) * c
        A, B = a * A, a * B + b
    return A, B


def _check_moments(x, mean, var, n_sigma=5.0):
    """Sample mean and variance of x against a Gaussian law's, within n_sigma standard errors."""
    N = x.size
    assert abs(x.mean() - mean) < n_sigma * math.sqrt(var / N), (x.mean(), mean)
    assert abs(x.var(ddof=1) - var) < n_sigma * var * math.sqrt(2 / (N - 1)), (x.var(ddof=1), var)


@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small"])
def test_ddpm_with_the_gaussian_oracle_reproduces_the_data(variance):
    """1000 DDPM steps, 20000 samples of N(0.3, 0.5^2).
    Sampling error: the sample mean has standard error s/sqrt(N) = 3.5e-3.
    Discretisation bias (exact, from ddpm_output_law): |mean - mu| = 3e-6, std off by +0.15%
    (fixed_large) and -0.8% (fixed_small); asserted below 5e-3 and 2%."""
    betas = make_beta_schedule("linear", 1000)
    m, v = ddpm_output_law(betas, MU, S, variance)
    assert abs(m - MU) < 5e-3 and abs(math.sqrt(v) / S - 1) < 0.02  # the bias is small...
    d = GaussianDiffusion(betas)
    oracle = gaussian_oracle(ref_alpha_bar(betas), MU, S)
    x = d.sample(oracle, (20000,), variance=variance, rng=np.random.default_rng(0))
    _check_moments(x, m, v)  # ... and the sampler draws from exactly that law
    se = S / math.sqrt(x.size)
    assert abs(x.mean() - MU) < 5 * se + 5e-3
    assert abs(x.std() / S - 1) < 5 * math.sqrt(0.5 / x.size) + 0.02


def test_ddim_200_steps_with_the_gaussian_oracle_reproduces_the_data():
    """DDIM (eta = 0) is a deterministic affine map of x_T here, so its output law is
    N(B, A^2) exactly. Bias (exact): mean off by 9e-4 (x_T ~ N(0, 1) instead of q(x_T), carried
    along by the deterministic map), std by -1.4%; asserted below 5e-3 and 3%."""
    betas = make_beta_schedule("linear", 1000)
    seq = list(ddim_timesteps(1000, 200))
    A, B = ddim_affine_map(betas, seq, MU, S)
    assert abs(B - MU) < 5e-3 and abs(abs(A) / S - 1) < 0.03
    d = GaussianDiffusion(betas)
    oracle = gaussian_oracle(ref_alpha_bar(betas), MU, S)
    x = d.sample(oracle, (20000,), "ddim", steps=200, rng=np.random.default_rng(0))
    _check_moments(x, B, A * A)
    se = S / math.sqrt(x.size)
    assert abs(x.mean() - MU) < 5 * se + 5e-3
    assert abs(x.std() / S - 1) < 5 * math.sqrt(0.5 / x.size) + 0.03


@given(beta_schedules(), st.data(), st.floats(-1, 1), st.floats(0.05, 2.0), seeds)
def test_ddim_few_steps_is_the_exact_composition_of_its_affine_maps(betas, data, mu, s, seed):
    """With few steps DDIM is visibly biased (10 steps: std -28% for s = 0.5), but deterministically:
    every sample equals A x_T + B with (A, B) composed in scalars from eq. 12."""
    T = len(betas)
    steps = data.draw(st.integers(1, min(T, 20)))
    d = GaussianDiffusion(betas)
    x_T = np.random.default_rng(seed).standard_normal(64)
    x = d.sample(gaussian_oracle(ref_alpha_bar(betas), mu, s), (64,), "ddim", steps=steps, x_T=x_T)
    A, B = ddim_affine_map(betas, list(ddim_timesteps(T, steps)), mu, s)
    # The chain's intermediate values (x_t, and x0_hat = E[x_0 | x_t]) are O(1) whatever A is, so
    # rounding leaves an absolute error of many ulps of O(1) numbers even when A x_T + B is tiny.
    np.testing.assert_allclose(x, A * x_T + B, rtol=1e-7, atol=1e-9)


def test_few_step_ddim_bias_is_what_the_composition_predicts():
    """The flip side: 10 DDIM steps shrink the spread (std x0.72 for this data), and the sampler
    shows exactly that, far outside the sampling error; a test asking for s here would be wrong."""
    betas = make_beta_schedule("linear", 1000)
    A, _ = ddim_affine_map(betas, list(ddim_timesteps(1000, 10)), MU, S)
    assert 0.6 < abs(A) / S < 0.8


# ----------------------------------------------------------------------------- 2-D Gaussian mixture

WEIGHTS = (0.3, 0.7)
MEANS = ((-1.2, -0.6), (1.2, 0.9))
STDS = (0.25, 0.35)


def _check_mixture(x, bias_w=0.005, bias_m=0.01, bias_s=0.03, n_sigma=5.0):
    """Weights, component means and stds of samples x (N, 2) against the mixture.

    Assign each sample to the nearest component mean; the means are >= 4 stds from the midpoint, so
    misassignment (< 1e-4 of the samples) is negligible. Standard errors: sqrt(w (1 - w) / N) for a
    weight, s_k / sqrt(N_k) for a mean coordinate, sqrt(1 / (2 N_k)) for a relative std. Bias
    allowances, from runs with 200000 samples (standard errors ~1e-3): 1000 DDPM steps (either
    variance) are within 1e-3 on weights, 1.5e-3 on means and 1.7% on stds; 200 DDIM steps with
    eta = 0 within 1e-3, 6.2e-3 and 2.1%, and with eta = 1 within 2.3e-3, 3.3e-3 and 5.6%."""
    means = np.array(MEANS)
    k = ((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    N = len(x)
    for j, (w, m, s) in enumerate(zip(WEIGHTS, MEANS, STDS)):
        xs = x[k == j]
        assert abs(len(xs) / N - w) < n_sigma * math.sqrt(w * (1 - w) / N) + bias_w
        np.testing.assert_array_less(np.abs(xs.mean(0) - m), n_sigma * s / math.sqrt(len(xs)) + bias_m)
        np.testing.assert_array_less(np.abs(xs.std(0) / s - 1), n_sigma * math.sqrt(0.5 / len(xs)) + bias_s)


def _mixture_sample(N, **kwargs):
    betas = make_beta_schedule("linear", 1000)
    d = GaussianDiffusion(betas)
    oracle = gmm_oracle(ref_alpha_bar(betas), WEIGHTS, MEANS, STDS)
    return d.sample(oracle, (N, 2), rng=np.random.default_rng(0), **kwargs)


def test_ddpm_with_the_mixture_oracle_reproduces_weights_and_means():
    _check_mixture(_mixture_sample(3000))


def test_ddim_200_steps_with_the_mixture_oracle_reproduces_weights_and_means():
    _check_mixture(_mixture_sample(3000, sampler="ddim", steps=200))


@pytest.mark.slow
@pytest.mark.parametrize("kwargs,bias_s", [({}, 0.03), ({"variance": "fixed_small"}, 0.03),
                                           ({"sampler": "ddim", "steps": 200}, 0.03),
                                           ({"sampler": "ddim", "steps": 200, "eta": 1.0}, 0.08)])
def test_mixture_oracle_with_many_samples(kwargs, bias_s):
    """The same with 50000 samples: standard errors shrink 3x, so the bias allowances dominate."""
    _check_mixture(_mixture_sample(50000, **kwargs), bias_s=bias_s)
