"""The exact denoisers of tinydiff.oracle against Bayes' rule written out with SciPy's densities,
and the samplers driven by them (the sampler's error alone)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from tinydiff.data.toy2d import sample_toy2d, toy2d_mixture
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.oracle import alpha_bar_at, mixture_denoiser, oracle_model, training_set_denoiser
from tinydiff.schedules import make_beta_schedule

D = GaussianDiffusion(make_beta_schedule("linear", 1000))


def bayes_mixture_posterior_mean(mix, xt, a):
    """E[x_0 | x_t] = sum_k r_k(x_t) m_k(x_t): component k's evidence N(x_t; sqrt(a) mu_k,
    a Sigma_k + (1 - a) I) and its Gaussian posterior mean mu_k + sqrt(a) Sigma_k C_k^{-1} (x_t - sqrt(a) mu_k)."""
    num, means = [], []
    for w, mu, cov in zip(mix.weights, mix.means, mix.covariances):
        C = a * cov + (1 - a) * np.eye(2)
        num.append(w * multivariate_normal(math.sqrt(a) * mu, C).pdf(xt))
        means.append(mu + (math.sqrt(a) * cov @ np.linalg.solve(C, (xt - math.sqrt(a) * mu).T)).T)
    r = np.array(num) / np.sum(num, axis=0)
    return np.einsum("kn,kni->ni", r, np.array(means))


@pytest.mark.parametrize("name", ["gmm", "8gaussians"])
@pytest.mark.parametrize("a", [0.999, 0.7, 0.2, 0.01])
def test_mixture_denoiser_is_bayes_posterior_mean(name, a):
    mix = toy2d_mixture(name)
    xt = np.random.default_rng(0).normal(scale=1.5, size=(50, 2))
    np.testing.assert_allclose(mixture_denoiser(mix)(xt, a), bayes_mixture_posterior_mean(mix, xt, a),
                               rtol=1e-7, atol=1e-9)


def test_training_set_denoiser_is_bayes_over_the_points():
    rng = np.random.default_rng(1)
    pts, xt, a = rng.normal(size=(30, 2)), rng.normal(size=(7, 2)), 0.6
    logw = np.array([[multivariate_normal(math.sqrt(a) * p, (1 - a) * np.eye(2)).logpdf(x) for p in pts]
                     for x in xt])
    w = np.exp(logw - logw.max(1, keepdims=True))
    want = (w / w.sum(1, keepdims=True)) @ pts
    np.testing.assert_allclose(training_set_denoiser(pts, chunk=3)(xt, a), want, rtol=1e-10)


def test_oracle_eps_is_minus_scaled_score_at_fractional_t():
    mix = toy2d_mixture("8gaussians")
    model = oracle_model(mixture_denoiser(mix), D.alphas_cumprod)
    xt = np.random.default_rng(2).normal(size=(6, 2))
    for t in (0, 137, 612.25, 999):
        a = float(alpha_bar_at(D.alphas_cumprod, t))
        if t == int(t):
            assert a == pytest.approx(D.alphas_cumprod[int(t)], rel=1e-12)
        eps = model(xt, np.full(6, t))
        np.testing.assert_allclose(eps, -math.sqrt(1 - a) * mix.noised(math.sqrt(a), 1 - a).score(xt),
                                   rtol=1e-8, atol=1e-10)


@pytest.fixture(scope="module")
def converged():
    """8 gaussians through the ODE with the exact model and 1000 DDIM steps: the ODE's own map."""
    model = oracle_model(mixture_denoiser(toy2d_mixture("8gaussians")), D.alphas_cumprod)
    x_T = np.random.default_rng(3).standard_normal((1000, 2))
    return model, x_T, D.sample(model, x_T.shape, sampler="ddim", steps=1000, x_T=x_T)


def test_the_exact_ode_map_samples_the_mixture(converged):
    """Its samples fall on the 8 components equally often (within 4 standard errors) and match
    the mixture's mean and covariance: only sampling noise is left."""
    _, _, out = converged
    mix = toy2d_mixture("8gaussians")
    n = len(out)
    nearest = np.argmin(((out[:, None] - mix.means[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=8)
    assert np.all(np.abs(counts - n / 8) < 4 * math.sqrt(n * (1 / 8) * (7 / 8))), counts
    np.testing.assert_allclose(out.mean(0), mix.mean(), atol=4 * math.sqrt(1 / n))
    np.testing.assert_allclose(np.cov(out.T), mix.covariance(), atol=0.15)


@pytest.mark.parametrize("sampler, gain", [("euler", 1.6), ("heun", 3.0), ("dpmpp_2m", 3.0)])
def test_on_the_mixture_the_sampler_error_falls_at_its_order(converged, sampler, gain):
    """The sampler's error alone, point by point against the converged map: doubling the Karras
    steps from 25 to 50 divides it by ~2 (euler) or ~4 (heun, dpmpp_2m); measured 2.1, 4.9, 5.5."""
    model, x_T, ref = converged
    x_T, ref = x_T[:500], ref[:500]
    err = [np.median(np.linalg.norm(D.sample(model, x_T.shape, sampler=sampler, steps=n,
                                             sigmas="karras", x_T=x_T) - ref, axis=1)) for n in (25, 50)]
    assert err[0] / err[1] > gain and err[1] < 0.03, err


def test_the_memorising_optimum_samples_its_training_points():
    pts = sample_toy2d("moons", 200, 4)
    model = oracle_model(training_set_denoiser(pts), D.alphas_cumprod)
    x_T = np.random.default_rng(5).standard_normal((300, 2))
    out = D.sample(model, x_T.shape, sampler="heun", steps=30, sigmas="karras", x_T=x_T)
    nearest = np.sqrt(((out[:, None] - pts[None]) ** 2).sum(-1)).min(1)
    assert np.median(nearest) < 1e-3 and len(np.unique(np.argmin(((out[:, None] - pts[None]) ** 2)
                                                               .sum(-1), 1))) > 50
