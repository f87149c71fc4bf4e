"""Log-likelihood through the probability-flow ODE against closed forms: SciPy's Gaussian log
density, the toy mixture's log_prob, and Hutchinson's estimator against the exact trace."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from autograd.tensor import Tensor
from tinydiff.data.toy2d import toy2d_mixture
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.likelihood import ode_log_likelihood, trace_exact, trace_hutchinson
from tinydiff.models.mlp import MLPDenoiser
from tinydiff.oracle import alpha_bar_at, mixture_eps_tensor
from tinydiff.samplers import sigmas_from_alphas_cumprod
from tinydiff.schedules import make_beta_schedule

D = GaussianDiffusion(make_beta_schedule("linear", 1000))
SIGMA_MIN = float(sigmas_from_alphas_cumprod(D.alphas_cumprod)[0])


def gaussian_eps_tensor(mu: np.ndarray, cov: np.ndarray):
    """The exact eps for data N(mu, cov), on Tensors: x_t ~ N(sqrt(a) mu, a cov + (1 - a) I), so
    eps = sqrt(1 - a) C^{-1} (x_t - sqrt(a) mu)."""
    def eps_fn(x, t):
        a = float(alpha_bar_at(D.alphas_cumprod, np.asarray(t)[0]))
        prec = np.linalg.inv(a * cov + (1 - a) * np.eye(len(mu)))
        return ((x - Tensor(math.sqrt(a) * mu)) @ Tensor(prec)) * math.sqrt(1 - a)
    return eps_fn


def test_gaussian_ode_log_density_is_scipys():
    mu, cov = np.array([0.4, -0.2]), np.array([[0.5, 0.2], [0.2, 0.3]])
    x0 = np.random.default_rng(0).multivariate_normal(mu, cov, size=20)
    got = ode_log_likelihood(gaussian_eps_tensor(mu, cov), D.alphas_cumprod, x0, steps=200)
    # x_0 sits at sigma_min: its law there is N(mu, cov + sigma_min^2 I)
    want = multivariate_normal(mu, cov + SIGMA_MIN ** 2 * np.eye(2)).logpdf(x0)
    # The change of variables alone: the flow of N(mu, cov + sigma^2 I) is linear, so the integral
    # of the trace is 1/2 log det(cov + sigma_max^2 I) - 1/2 log det(cov + sigma_min^2 I) exactly.
    s2 = sigmas_from_alphas_cumprod(D.alphas_cumprod)[-1] ** 2
    exact_delta = 0.5 * (np.linalg.slogdet(cov + s2 * np.eye(2))[1]
                         - np.linalg.slogdet(cov + SIGMA_MIN ** 2 * np.eye(2))[1])
    np.testing.assert_allclose(got["delta_logp"], exact_delta, atol=2e-3)
    # The whole log density: plus the latent's small integration error and the samplers' prior
    # x_T ~ N(0, I), which misses N(mu, ...) by about x_bar . mu / sigma_max^2 (< 0.006 here).
    np.testing.assert_allclose(got["logp"], want, atol=0.01)
    assert abs(np.mean(got["logp"] - want)) < 3e-3
    assert got["evaluations"] == 400


@pytest.mark.parametrize("name", ["8gaussians", "gmm"])
def test_exact_mixture_ode_nll_is_the_mixture_log_prob(name):
    mix = toy2d_mixture(name)
    x0 = mix.sample(16, 1)
    got = ode_log_likelihood(mixture_eps_tensor(mix, D.alphas_cumprod), D.alphas_cumprod, x0, steps=150)
    want = mix.noised(1.0, SIGMA_MIN ** 2).log_prob(x0)
    np.testing.assert_allclose(got["logp"], want, atol=0.02)
    assert abs(got["logp"].mean() - mix.log_prob(x0).mean()) < 0.05  # sigma_min barely blurs it


def test_mixture_eps_tensor_is_the_mixture_score():
    mix = toy2d_mixture("gmm")
    x = np.random.default_rng(2).normal(size=(9, 2))
    a = float(D.alphas_cumprod[300])
    eps = mixture_eps_tensor(mix, D.alphas_cumprod)(Tensor(x), np.full(9, 300)).data
    np.testing.assert_allclose(eps, -math.sqrt(1 - a) * mix.noised(math.sqrt(a), 1 - a).score(x), rtol=1e-9)


def _mlp():
    model = MLPDenoiser(data_dim=2, hidden_dim=32, num_layers=2)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return lambda x, t: model(x, t)


def test_exact_trace_matches_finite_differences():
    fn = _mlp()
    x, t = np.random.default_rng(3).normal(size=(5, 2)), np.full(5, 123.5)
    _, tr = trace_exact(fn, x, t)
    h, fd = 1e-5, np.zeros(5)
    for i in range(2):
        e = np.zeros(2)
        e[i] = h
        fd += (fn(Tensor(x + e), t).data[:, i] - fn(Tensor(x - e), t).data[:, i]) / (2 * h)
    np.testing.assert_allclose(tr, fd, rtol=1e-6, atol=1e-8)


def test_hutchinson_is_unbiased_for_the_trace():
    fn = _mlp()
    rng = np.random.default_rng(4)
    x, t = rng.normal(size=(3, 2)), np.full(3, 40.0)
    _, exact = trace_exact(fn, x, t)
    probes = 4000
    xs = np.repeat(x, probes, axis=0)
    v = (rng.integers(0, 2, size=xs.shape) * 2 - 1).astype(np.float64)
    _, est = trace_hutchinson(fn, xs, np.full(len(xs), 40.0), v)
    est = est.reshape(3, probes)
    se = est.std(1) / math.sqrt(probes)
    assert np.all(np.abs(est.mean(1) - exact) < 4 * se + 1e-12), (est.mean(1), exact, se)
    assert np.all(se > 0)  # the off-diagonal terms make single probes noisy


def test_hutchinson_ode_log_density_is_unbiased():
    mu, cov = np.array([0.1, 0.3]), np.array([[0.6, -0.25], [-0.25, 0.4]])
    x0 = np.repeat(np.random.default_rng(5).multivariate_normal(mu, cov, size=1), 400, axis=0)
    got = ode_log_likelihood(gaussian_eps_tensor(mu, cov), D.alphas_cumprod, x0, steps=60,
                             hutchinson=True, rng=np.random.default_rng(6))["logp"]
    want = multivariate_normal(mu, cov + SIGMA_MIN ** 2 * np.eye(2)).logpdf(x0[0])
    assert got.std() > 0.01                                 # each probe alone is off ...
    assert abs(got.mean() - want) < 4 * got.std() / math.sqrt(len(got)) + 1e-3  # ... but not on average


def test_mnist_ode_bpd_on_an_exact_model_of_tiny_images():
    """Images (1, 3, 3) of data N(0, s^2 I): the dequantised ODE bits/dim agree with SciPy's
    density of the same dequantised pixels, minus log(2/255) per dimension."""
    from types import SimpleNamespace
    from tinydiff.likelihood import mnist_ode_bpd
    s = 0.5
    exact = gaussian_eps_tensor(np.zeros(9), s * s * np.eye(9))

    class Model:
        def parameters(self):
            return []

        def __call__(self, x, t, y=None):
            return exact(x.reshape(x.shape[0], 9), t).reshape(*x.shape)

    run = SimpleNamespace(model=Model(), diffusion=D, config=SimpleNamespace(parameterization="eps"))
    images = np.round((np.random.default_rng(7).normal(scale=s, size=(60, 1, 3, 3)) + 1) * 127.5) / 127.5 - 1
    got = mnist_ode_bpd(run, images, steps=40, seed=3, batch_size=30)
    rng = np.random.default_rng(3)  # the same dequantisation noise as the first draws inside
    deq = np.concatenate([images[:30] + rng.uniform(-1 / 255, 1 / 255, size=(30, 1, 3, 3)).astype(np.float32)])
    law = multivariate_normal(np.zeros(9), (s * s + SIGMA_MIN ** 2) * np.eye(9))
    want = (-law.logpdf(deq.reshape(30, 9)) - 9 * math.log(2 / 255)) / (9 * math.log(2))
    assert got["n"] == 60 and got["evaluations"] == 80
    assert abs(got["bpd"] - want.mean()) < 0.15  # Hutchinson and dequantisation noise over 60 images
    assert 0 < got["bpd"] < 8
