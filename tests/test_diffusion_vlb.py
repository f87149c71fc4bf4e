"""The variational bound (DDPM eq. 5) in bits/dim: its pieces, and its value for an exact model."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import norm

from test_diffusion_reference import (beta_schedules, gaussian_oracle, ref_alpha_bar, ref_marginal,
                                      ref_posterior, ref_posterior_table, seeds)
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.schedules import make_beta_schedule
from tinydiff.vlb import (approx_standard_normal_cdf, discretized_gaussian_log_likelihood, normal_kl,
                          standard_normal_cdf)

GRID = -1 + 2 * np.arange(256) / 255  # 8-bit pixel values scaled to [-1, 1]
LOG2 = math.log(2)


@given(st.floats(-3, 3), st.floats(-3, 1), st.floats(-3, 3), st.floats(-3, 1))
def test_normal_kl_is_the_expected_log_density_ratio(m1, lv1, m2, lv2):
    """KL = E_p[log p(x) - log q(x)], here by Gauss-Hermite quadrature of scipy's log densities
    (exact: with x = m1 + sd z the log ratio is a quadratic in z)."""
    z, w = np.polynomial.hermite_e.hermegauss(10)
    x = m1 + math.exp(lv1 / 2) * z
    log_ratio = norm.logpdf(x, m1, math.exp(lv1 / 2)) - norm.logpdf(x, m2, math.exp(lv2 / 2))
    expected = (w * log_ratio).sum() / w.sum()
    got = normal_kl(np.array([m1]), np.array([lv1]), np.array([m2]), np.array([lv2]))[0]
    assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)


def test_standard_normal_cdfs():
    x = np.linspace(-8, 8, 1601)
    np.testing.assert_allclose(standard_normal_cdf(x), norm.cdf(x), rtol=1e-13, atol=0)
    assert standard_normal_cdf(np.array([-30.0]))[0] > 0  # erfc keeps the far lower tail
    assert np.abs(approx_standard_normal_cdf(x) - norm.cdf(x)).max() < 3.1e-4
    assert standard_normal_cdf(x.astype(np.float32)).dtype == np.float32


@given(st.floats(-1.2, 1.2), st.floats(-6, 0), st.sampled_from([np.float32, np.float64]))
def test_discretized_decoder_is_a_distribution_over_the_256_levels(mean, log_scale, dtype):
    """DDPM eq. 13: bins [x - 1/255, x + 1/255], outermost ones open-ended, so masses sum to 1."""
    x = GRID.astype(dtype)
    log_p = discretized_gaussian_log_likelihood(x, np.full(256, mean, dtype), np.full(256, log_scale, dtype))
    assert log_p.dtype == dtype
    total = np.exp(log_p.astype(np.float64)).sum()
    assert math.isclose(total, 1.0, rel_tol=1e-5 if dtype == np.float32 else 1e-9)
    # each bin against scipy's cdf / sf (sf in the upper half keeps right-tail digits)
    sd = math.exp(log_scale)
    hi = np.append(GRID[:-1] + 1 / 255, np.inf)
    lo = np.append(-np.inf, GRID[1:] - 1 / 255)
    mass = np.where(lo > mean, norm.sf((lo - mean) / sd) - norm.sf((hi - mean) / sd),
                    norm.cdf((hi - mean) / sd) - norm.cdf((lo - mean) / sd))
    big = mass > 1e-30
    rtol = 1e-3 if dtype == np.float32 else 1e-7
    np.testing.assert_allclose(log_p[big], np.log(mass[big]), rtol=rtol, atol=rtol)


def test_discretized_decoder_keeps_right_tail_bins_accurate():
    """A bin 12 standard deviations right of the mean: Phi(b) - Phi(a) of two numbers equal to 1 in
    double precision would be 0; the right-tail form gets log P exactly."""
    x, mean, sd = np.array([0.6]), np.array([0.0]), 0.05
    a, b = (0.6 - 1 / 255) / sd, (0.6 + 1 / 255) / sd
    expected = math.log(norm.sf(a) - norm.sf(b))
    got = discretized_gaussian_log_likelihood(x, mean, np.array([math.log(sd)]))[0]
    assert math.isclose(got, expected, rel_tol=1e-9)


@given(beta_schedules(), seeds)
def test_prior_bpd_is_kl_of_the_last_marginal_to_the_standard_normal(betas, seed):
    d = GaussianDiffusion(betas)
    x0 = np.random.default_rng(seed).uniform(-1, 1, (3, 5))
    c, v = ref_marginal(betas, len(betas) - 1)
    # KL(N(c x, v) || N(0, 1)) per dimension = (v + c^2 x^2 - 1 - log v) / 2
    expected = ((v + c * c * x0 ** 2 - 1 - math.log(v)) / 2).mean(axis=1) / LOG2
    np.testing.assert_allclose(d.prior_bpd(x0), expected, rtol=1e-7, atol=1e-12)


@given(beta_schedules(), seeds, st.sampled_from(["fixed_large", "fixed_small"]))
def test_vb_terms_are_kl_for_t_positive_and_decoder_nll_at_t0(betas, seed, variance):
    """Array t mixes both kinds of term; each row equals its own scalar evaluation, and a t > 0 row is
    the KL between Bayes' posterior and p's Gaussian (sigma^2 = beta_t or beta_tilde_t)."""
    T = len(betas)
    d = GaussianDiffusion(betas)
    rng = np.random.default_rng(seed)
    x0 = rng.choice(GRID, size=(4, 3))
    eps, noise = rng.standard_normal((2, 4, 3))
    t = np.array([0, T - 1, rng.integers(0, T), 0])
    xt = d.q_sample(x0, t, noise)
    terms = d.vb_terms_bpd(eps, x0, xt, t, variance=variance)
    for i in range(4):
        row = d.vb_terms_bpd(eps[i:i + 1], x0[i:i + 1], xt[i:i + 1], int(t[i]), variance=variance)
        np.testing.assert_allclose(terms[i], row[0], rtol=1e-12)
        if t[i] > 0:
            ti = int(t[i])
            mean_q = [ref_posterior(betas, ti, a, b)[0] for a, b in zip(x0[i], xt[i])]
            var_q = ref_posterior(betas, ti, 0.0, 0.0)[1]
            mean_p = d.p_mean_variance(eps[i:i + 1], xt[i:i + 1], ti)[0][0]
            var_p = betas[ti] if variance == "fixed_large" else var_q
            kl = [math.log(math.sqrt(var_p / var_q)) + (var_q + (mq - mp) ** 2) / (2 * var_p) - 0.5
                  for mq, mp in zip(mean_q, mean_p)]
            assert math.isclose(terms[i], np.mean(kl) / LOG2, rel_tol=1e-6, abs_tol=1e-9)


# ----------------------------------------------------------------------------- an exact model


def _discretised_gaussian_data(mu, s):
    """P(level) for N(mu, s^2) binned onto the 256 levels (edge bins open-ended): 8-bit-like data."""
    hi = np.append(GRID[:-1] + 1 / 255, np.inf)
    lo = np.append(-np.inf, GRID[1:] - 1 / 255)
    return norm.cdf((hi - mu) / s) - norm.cdf((lo - mu) / s)


def _log_bin_mass(x0, mean, sd):
    hi = np.where(x0 > 1 - 1e-9, np.inf, x0 + 1 / 255)
    lo = np.where(x0 < -1 + 1e-9, -np.inf, x0 - 1 / 255)
    return np.log(np.where(mean > x0, norm.cdf((hi - mean) / sd) - norm.cdf((lo - mean) / sd),
                           norm.sf((lo - mean) / sd) - norm.sf((hi - mean) / sd)))


def expected_vlb_terms(betas, p):
    """E over the data of each term of eq. 5 in bits, for the oracle of Gaussian data with the data's
    mean m and variance v (the best eps predictor that is affine in x_t), sigma_t^2 = beta_t.

    - prior: KL(N(sqrt(ab_T) x0, 1 - ab_T) || N(0, 1)) is quadratic in x0: needs only E[x0^2].
    - t > 0: KL between N(mu_q, var_q) and N(mu_p, beta_t) = (-1 + log(beta_t / var_q) + var_q / beta_t
      + E[(mu_q - mu_p)^2] / beta_t) / 2, where mu_q - mu_p = u x0 + w s1 eps + r is affine in the
      independent x0 and eps (x_t = sa x0 + s1 eps), so its mean square needs E[x0], E[x0^2].
    - t = 0: E[-log P(x0 | mu_p(x_1), sigma_0)] with mu_p Gaussian given x0: Gauss-Hermite
      quadrature over eps and a sum over the 256 levels. sigma_0^2 is beta_tilde at code index 1,
      the decoder variance DDPM's code uses with sigma^2 = beta ("fixed_large").
    """
    ab = ref_alpha_bar(betas)
    posterior = ref_posterior_table(betas)
    m1, m2 = float(p @ GRID), float(p @ GRID ** 2)
    v = m2 - m1 * m1
    terms = np.zeros(len(betas))
    aT = ab[-1]
    prior = 0.5 * (-1 - math.log(1 - aT) + (1 - aT) + aT * m2)
    for t in range(len(betas)):
        b, sa, s1 = float(betas[t]), math.sqrt(ab[t]), math.sqrt(1 - ab[t])
        k = s1 / (ab[t] * v + 1 - ab[t])          # eps*(x) = k x + c
        c = -k * sa * m1
        g = b / s1                                 # mu_p(x) = (x - g eps*(x)) / sqrt(1 - b)
        A, B = (1 - g * k) / math.sqrt(1 - b), -g * c / math.sqrt(1 - b)
        if t == 0:
            sd0 = math.sqrt(posterior[1][2])
            z, wz = np.polynomial.hermite_e.hermegauss(60)
            mean = A * (sa * GRID[:, None] + s1 * z[None]) + B
            log_mass = _log_bin_mass(np.broadcast_to(GRID[:, None], mean.shape), mean, sd0)
            terms[0] = -(p[:, None] * wz[None] / wz.sum() * log_mass).sum()
            continue
        c1, c2, var_q = posterior[t]
        w, r = c2 - A, -B                          # mu_q - mu_p = c1 x0 + w x_t + r
        u = c1 + w * sa
        mean_sq = u * u * m2 + 2 * u * r * m1 + r * r + w * w * s1 * s1
        terms[t] = 0.5 * (-1 + math.log(b / var_q) + var_q / b + mean_sq / b)
    return prior / LOG2, terms / LOG2


def conditional_entropy_x0_given_x1(betas, p):
    """H(x_0 | x_1) in bits, by quadrature over x_1 ~ sum_j p_j N(sqrt(1 - b_0) g_j, b_0): what a
    perfect decoder p(x_0 | x_1) would pay. (x_1's noise std 0.01 is wider than a bin, 2/255.)"""
    b0 = float(betas[0])
    x1 = np.arange(-1.1, 1.1, 2.5e-4)
    keep = p > 0
    joint = (norm.pdf((x1[None] - math.sqrt(1 - b0) * GRID[keep][:, None]) / math.sqrt(b0))
             / math.sqrt(b0) * p[keep][:, None])
    post = joint / joint.sum(axis=0, keepdims=True)
    return -(joint * np.log(np.maximum(post, 1e-300))).sum() * 2.5e-4 / LOG2


def test_vlb_of_the_exact_model_on_8bit_gaussian_data():
    """Data: N(0.1, 0.3^2) discretised to 256 levels (tails past +-1 hold 0.1% of the mass), whose
    exact NLL is its entropy H = 7.297 bits/dim. Model: the oracle eps for Gaussian data with the
    data's mean and variance, sigma_t^2 = beta_t, DDPM's linear schedule.

    1. calc_bpd_loop (Monte Carlo over data and noise, 4000 samples) agrees with the expected bound
       computed in closed form above, term group by term group, within 5 standard errors.
    2. The expected bound is >= H (it bounds the model's NLL, which is >= H by Gibbs' inequality),
       and the gap splits into two non-negative parts, each an exact inequality:
       - decoder: E[L_0] >= H(x_0 | x_1). Computed gap 0.116 bits: a Gaussian decoder of fixed
         width centred on E[x_0 | x_1] stands in for the true posterior over ~3 bins.
       - prior + KL terms >= I(x_0; x_1) = H - H(x_0 | x_1), since they bound -log p(x_1) minus
         h(x_1 | x_0). Computed gap 0.008 bits: for near-Gaussian data, fixed-variance Gaussian
         reverse steps are almost exact.
       The asserted bounds (0.15 and 0.02 bits) are those computed gaps with room for quadrature error.
    """
    betas = make_beta_schedule("linear", 1000)
    p = _discretised_gaussian_data(0.1, 0.3)
    H = -(p[p > 0] * np.log(p[p > 0])).sum() / LOG2
    prior, terms = expected_vlb_terms(betas, p)
    total = prior + terms.sum()
    H_x0_x1 = conditional_entropy_x0_given_x1(betas, p)
    decoder_gap = terms[0] - H_x0_x1
    chain_gap = prior + terms[1:].sum() - (H - H_x0_x1)
    assert total >= H
    assert 0 <= decoder_gap < 0.15
    assert 0 <= chain_gap < 0.02

    d = GaussianDiffusion(betas)
    m1 = float(p @ GRID)
    oracle = gaussian_oracle(ref_alpha_bar(betas), m1, math.sqrt(float(p @ GRID ** 2) - m1 * m1))
    rng = np.random.default_rng(0)
    N = 4000
    x0 = rng.choice(GRID, size=N, p=p)
    out = d.calc_bpd_loop(oracle, x0, rng=rng)
    assert out["vb"].shape == (N, 1000) and out["x0_mse"].shape == (N, 1000)
    np.testing.assert_allclose(out["total_bpd"], out["prior_bpd"] + out["vb"].sum(axis=1), rtol=1e-12)
    for estimate, exact in [(out["total_bpd"], total), (out["vb"][:, 0], terms[0]),
                            (out["vb"][:, 1:].sum(axis=1), terms[1:].sum()), (out["prior_bpd"], prior)]:
        assert abs(estimate.mean() - exact) < 5 * estimate.std() / math.sqrt(N) + 1e-12


def test_vlb_rejects_unknown_variance():
    d = GaussianDiffusion(make_beta_schedule("linear", 100))
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="fixed_large, fixed_small"):
        d.vb_terms_bpd(x, x, x, 5, variance="learned")
