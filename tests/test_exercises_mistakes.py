"""Typical mistakes, planted: each must fail its exercise with a message naming the property.

One or more per chapter: a missing unbroadcast, a sign error, a flipped kernel, variance for
standard deviation, (1 - alpha_t) for (1 - alpha_bar_t), off-by-one timesteps, DDIM's final
alpha_bar_prev not 1, a Heun step that is only first order.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from tinydiff.exercises import EXERCISES, solutions as S
from tinydiff.exercises.runner import grade


@pytest.fixture(autouse=True)
def few_examples(monkeypatch):
    monkeypatch.setenv("TINYDIFF_EXERCISE_EXAMPLES", "10")
    # The first failure found names the same property as the shrunk one, at a fraction of the
    # cost (shrinking replays a few hundred examples); one test below keeps shrinking on.
    monkeypatch.setenv("TINYDIFF_EXERCISE_SHRINK", "0")


def _alpha_bar(betas):
    return np.cumprod(1.0 - np.asarray(betas))


# ---------------------------------------------------------------- chapter 1

def mul_without_unbroadcast(a, b, grad):
    return grad * b, grad * a


def div_with_sign_error(a, b, grad):
    da, db = S.div_backward(a, b, grad)
    return da, -db


def tanh_in_terms_of_x(x, y, grad):
    return grad * (1 - x * x)


def sum_without_broadcast_back(x, grad, axis, keepdims):
    return grad


# ---------------------------------------------------------------- chapter 2

def conv_with_flipped_kernel(x, W, b, stride, padding):
    return S.conv2d_forward(x, W[:, :, ::-1, ::-1].copy(), b, stride, padding)


def linear_bias_not_summed(x, W, b, grad):
    dx, dW, _ = S.linear_backward(x, W, b, grad)
    return dx, dW, grad


def embedding_sin_first(t, dim, max_period=10000.0):
    e = S.timestep_embedding(t, dim, max_period)
    half = dim // 2
    return np.concatenate([e[:, half:], e[:, :half]], axis=1)


# ---------------------------------------------------------------- chapter 3

def q_mean_variance_typo(x0, t, betas):
    return np.sqrt(_alpha_bar(betas)[t]) * x0, np.full_like(x0, betas[t])  # 1 - alpha_t


def q_sample_variance_for_std(x0, t, noise, betas):
    a = _alpha_bar(betas)[t]
    return math.sqrt(a) * x0 + (1 - a) * noise


def posterior_variance_off_by_one(t, betas):
    ab = _alpha_bar(betas)
    prev = ab[t]  # should be alpha_bar_{t-1}
    return (1 - prev) / (1 - ab[t]) * betas[t]


def cosine_off_by_one(T, s=0.008, max_beta=0.999):
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return np.array([min(1 - f(t / T) / f(max(t - 1, 0) / T) if t else 1e-4, max_beta) for t in range(T)])


# ---------------------------------------------------------------- chapter 4

def loss_off_by_one(eps_model, x0, t, noise, betas):
    ab = np.append(1.0, _alpha_bar(betas))[t][:, None]  # alpha_bar_{t-1}: one step off
    xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * noise
    return float(np.mean((noise - eps_model(xt, t)) ** 2))


def ddpm_step_variance_for_std(eps, xt, t, noise, betas, variance):
    mean = S.ddpm_step(eps, xt, t, None, betas, variance)
    if t == 0:
        return mean
    var = betas[t] if variance == "beta" else S.posterior_variance(t, betas)
    return mean + var * noise


def ddim_step_final_not_one(eps, xt, t, t_prev, betas, eta, noise):
    if t_prev != -1:
        return S.ddim_step(eps, xt, t, t_prev, betas, eta, noise)
    ab = _alpha_bar(betas)
    x0 = (xt - np.sqrt(1 - ab[t]) * eps) / np.sqrt(ab[t])
    return np.sqrt(ab[0]) * x0 + np.sqrt(1 - ab[0]) * eps  # a_prev = alpha_bar[0], not 1


def ddim_sample_final_not_one(eps_model, x_T, betas, steps):
    seq = S.ddim_timesteps(len(betas), steps)
    x = x_T
    for i in range(len(seq) - 1, -1, -1):
        t_prev = seq[i - 1] if i > 0 else 0  # should be -1 (alpha_bar_prev = 1)
        x = S.ddim_step(eps_model(x, np.full(len(x), seq[i])), x, seq[i], t_prev, betas, 0.0, None)
    return x


def ddim_timesteps_by_stride(T, steps):
    return np.arange(0, T, max(T // steps, 1))[:steps]


def ddpm_sample_variance_for_std(eps_model, x_T, betas, rng):
    x = x_T
    for t in range(len(betas) - 1, -1, -1):
        z = rng.standard_normal(x.shape)
        x = ddpm_step_variance_for_std(eps_model(x, np.full(len(x), t)), x, t, z, betas, "beta")
    return x


def ddpm_sample_skips_t0(eps_model, x_T, betas, rng):
    x = x_T
    for t in range(len(betas) - 1, 0, -1):  # off by one: the last step (t = 0) never runs
        x = S.ddpm_step(eps_model(x, np.full(len(x), t)), x, t, rng.standard_normal(x.shape), betas, "beta")
    return x


# ---------------------------------------------------------------- chapter 5

def heun_slope_at_x(denoiser, x, sigma, sigma_next):
    d = (x - denoiser(x, sigma)) / sigma
    x_e = x + (sigma_next - sigma) * d
    if sigma_next == 0:
        return x_e
    d2 = (x - denoiser(x, sigma_next)) / sigma_next  # slope at x, not at the Euler prediction
    return x + (sigma_next - sigma) * (d + d2) / 2


def euler_sign_error(denoiser, x, sigma, sigma_next):
    return x + (sigma - sigma_next) * (x - denoiser(x, sigma)) / sigma


def karras_without_final_zero(n, sigma_min, sigma_max, rho=7.0):
    return S.karras_sigmas(n, sigma_min, sigma_max, rho)[:-1]


MISTAKES = [
    ("1.1", mul_without_unbroadcast, "did you sum over the broadcast axes (unbroadcast)?"),
    ("1.2", div_with_sign_error, "disagrees with float64 central differences"),
    ("1.3", tanh_in_terms_of_x, "disagrees with float64 central differences"),
    ("1.7", sum_without_broadcast_back, "broadcast it back to x's shape"),
    ("2.1", linear_bias_not_summed, "sum the bias gradient over the rows"),
    ("2.3", conv_with_flipped_kernel, "you flipped the kernel"),
    ("2.7", embedding_sin_first, "all cosines first, then all sines"),
    ("3.3", cosine_off_by_one, "improved DDPM eq. 17"),
    ("3.4", q_mean_variance_typo, "1 - alpha_t = beta_t, the seed notes' typo"),
    ("3.5", q_sample_variance_for_std, "variance for std"),
    ("3.6", posterior_variance_off_by_one, "Bayes' rule in precision form"),
    ("4.1", loss_off_by_one, "no off-by-one"),
    ("4.2", ddpm_step_variance_for_std, "variance for std"),
    ("4.3", ddim_step_final_not_one, "DDIM's final alpha_bar_prev is 1"),
    ("4.4", ddim_timesteps_by_stride, "the last timestep is T - 1"),
    ("4.5", ddim_sample_final_not_one, "alpha_bar_prev = 1"),
    ("4.6", ddpm_sample_skips_t0, "Algorithm 2's last step"),
    ("5.1", euler_sign_error, "converge to the exact solution"),
    ("5.2", heun_slope_at_x, "Heun's method is order 2"),
    ("5.3", karras_without_final_zero, "then the final 0"),
]


@pytest.mark.parametrize("exercise, mistake, named", MISTAKES, ids=[f"{m[0]}-{m[1].__name__}" for m in MISTAKES])
def test_a_planted_mistake_fails_with_the_property_named(exercise, mistake, named):
    result = grade(EXERCISES[exercise], mistake)
    assert not result.passed
    assert result.kind == "failed", result.message
    assert named in result.message, result.message
    assert "expected" in result.message or "counterexample" in result.message


@pytest.mark.slow
def test_too_much_noise_in_the_sampler_shows_in_the_moons_ratio():
    result = grade(EXERCISES["4.6"], ddpm_sample_variance_for_std)
    assert not result.passed and "distributed like the moons" in result.message, result.message


def test_every_chapter_has_a_planted_mistake():
    assert {m[0].split(".")[0] for m in MISTAKES} == {"1", "2", "3", "4", "5"}


@pytest.mark.slow
@pytest.mark.parametrize("exercise, mistake, named", MISTAKES, ids=[f"{m[0]}-{m[1].__name__}" for m in MISTAKES])
def test_a_planted_mistake_shrunk_still_names_the_property(exercise, mistake, named, monkeypatch):
    monkeypatch.setenv("TINYDIFF_EXERCISE_SHRINK", "1")
    result = grade(EXERCISES[exercise], mistake)
    assert not result.passed and result.kind == "failed" and named in result.message, result.message


def test_the_smallest_counterexample_is_reported(monkeypatch):
    monkeypatch.setenv("TINYDIFF_EXERCISE_SHRINK", "1")
    # the missing unbroadcast shrinks to a 0-d input against a 1-element one, all zeros
    message = grade(EXERCISES["1.1"], mul_without_unbroadcast).message
    assert "of shape ()" in message and "of shape (1,)" in message and "expected: ()" in message
    assert "[0.]" in message
