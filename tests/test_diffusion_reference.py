"""Independent reference derivations used by the diffusion tests, and checks of the references.

Nothing here calls the coefficient arrays of ``GaussianDiffusion``: the references are written
from the one-step definition q(x_s | x_{s-1}) = N(sqrt(1 - beta_s) x_{s-1}, beta_s I) (DDPM eq. 2)
in plain Python scalars, so a test comparing the library with them compares two derivations.
The tests at the bottom check the references themselves against brute-force numerics.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from tinydiff.schedules import SCHEDULES, make_beta_schedule

# ----------------------------------------------------------------------------- strategies


@st.composite
def beta_schedules(draw, max_T: int = 1000) -> np.ndarray:
    """A named schedule with T in 21..max_T, or T <= 64 betas in (0, 1), increasing or in any order."""
    kind = draw(st.sampled_from(["named", "increasing", "random"]))
    if kind == "named":
        return make_beta_schedule(draw(st.sampled_from(SCHEDULES)), draw(st.integers(21, max_T)))
    betas = draw(st.lists(st.floats(1e-6, 0.99), min_size=1, max_size=min(64, max_T)))
    return np.array(sorted(betas) if kind == "increasing" else betas, dtype=np.float64)


seeds = st.integers(0, 2**32 - 1)
dtypes = st.sampled_from([np.float32, np.float64])
batch_shapes = st.tuples(st.integers(1, 6)).flatmap(
    lambda b: st.lists(st.integers(1, 4), max_size=3).map(lambda rest: b + tuple(rest)))


def tolerance(dtype) -> float:
    """Relative tolerance for comparing a dtype's arithmetic with float64 Python references.

    float32: a few hundred ulps (chains of ~10 operations plus the cast of the coefficients).
    float64: 1 - alpha_bar_t, computed by subtraction, loses about log10(1/beta) digits when
    alpha_bar_t is near 1, and the strategies draw betas down to 1e-6: 1e-16 / 1e-6 = 1e-10 per
    use, so 1e-8 leaves room for a few such factors."""
    return 1e-4 if np.dtype(dtype) == np.float32 else 1e-8


# ----------------------------------------------------------------------------- q, from one step


def ref_marginal(betas, t: int) -> tuple[float, float]:
    """(c, v) with q(x_t | x_0) = N(c x_0, v), found by composing the one-step Gaussians
    x_s = sqrt(1 - b_s) x_{s-1} + sqrt(b_s) z_s for s = 0..t (code indices): a linear map of a
    Gaussian scales its mean by sqrt(1 - b) and its variance by (1 - b), then adds b.
    t = -1 is x_0 itself: (1, 0)."""
    c, v = 1.0, 0.0
    for b in betas[: t + 1]:
        c *= math.sqrt(1.0 - float(b))
        v = (1.0 - float(b)) * v + float(b)
    return c, v


def ref_alpha_bar(betas) -> list[float]:
    """alpha_bar for every code index, as the squared mean coefficient of ``ref_marginal``."""
    out, c = [], 1.0
    for b in betas:
        c *= math.sqrt(1.0 - float(b))
        out.append(c * c)
    return out


def ref_posterior(betas, t: int, x0: float, xt: float) -> tuple[float, float]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) by Bayes' rule, in scalars: the prior
    q(x_{t-1} | x_0) = N(c x_0, v) times the likelihood q(x_t | x_{t-1}) = N(sqrt(a) x_{t-1}, b),
    which as a function of x_{t-1} has precision a / b and mean x_t / sqrt(a). Precisions add and
    the mean is the precision-weighted average. At t = 0 the prior is a point mass at x_0."""
    b = float(betas[t])
    a = 1.0 - b
    c, v = ref_marginal(betas, t - 1)
    if v == 0.0:
        return x0, 0.0
    precision = a / b + 1.0 / v
    mean = (math.sqrt(a) * xt / b + c * x0 / v) / precision
    return mean, 1.0 / precision


def ref_posterior_table(betas) -> list[tuple[float, float, float]]:
    """For every code index t: (coefficient of x_0, coefficient of x_t, variance) of
    ``ref_posterior``, i.e. the same Bayes computation with the prior's (c, v) carried along
    incrementally, O(T) instead of O(T^2)."""
    table, c, v = [], 1.0, 0.0
    for b in betas:
        b = float(b)
        a = 1.0 - b
        if v == 0.0:
            table.append((1.0, 0.0, 0.0))
        else:
            precision = a / b + 1.0 / v
            table.append((c / v / precision, math.sqrt(a) / b / precision, 1.0 / precision))
        c, v = c * math.sqrt(a), a * v + b
    return table


# ----------------------------------------------------------------------------- exact oracles


def gaussian_oracle(alpha_bar, mu: float, s: float):
    """eps*(x_t, t) = E[eps | x_t] for data N(mu, s^2): x_t and eps are jointly Gaussian with
    Cov(eps, x_t) = sqrt(1 - ab) and Var(x_t) = ab s^2 + 1 - ab, so
    eps* = sqrt(1 - ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab).  ``alpha_bar``: a float64 array (T,)."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)

    def model_fn(x, t):
        ab = alpha_bar[np.asarray(t)].reshape((-1,) + (1,) * (x.ndim - 1))
        return (np.sqrt(1 - ab) * (x - np.sqrt(ab) * mu) / (ab * s * s + 1 - ab)).astype(x.dtype)

    return model_fn


def gmm_posterior_mean(x, ab, weights, means, stds):
    """E[x_0 | x_t] for the isotropic Gaussian mixture sum_k w_k N(m_k, s_k^2 I) in D dimensions.

    Given component k, x_t ~ N(sqrt(ab) m_k, v_k I) with v_k = ab s_k^2 + 1 - ab, so the
    responsibilities are r_k ∝ w_k v_k^(-D/2) exp(-|x_t - sqrt(ab) m_k|^2 / (2 v_k)), and within a
    component E[x_0 | x_t, k] = m_k + sqrt(ab) s_k^2 / v_k (x_t - sqrt(ab) m_k) (Gaussian
    conditioning). x: (N, D); ab: (N, 1)."""
    D = x.shape[1]
    log_r, cond = [], []
    for w, m, s in zip(weights, np.asarray(means, dtype=np.float64), stds):  # K is small: loop
        v = ab * s * s + 1 - ab                                               # (N, 1)
        centred = x - np.sqrt(ab) * m                                         # (N, D)
        log_r.append(math.log(w) - 0.5 * D * np.log(v[:, 0])
                     - np.einsum("nd,nd->n", centred, centred) / (2 * v[:, 0]))
        cond.append(m + np.sqrt(ab) * s * s / v * centred)
    log_r = np.stack(log_r, axis=1)                                           # (N, K)
    r = np.exp(log_r - log_r.max(axis=1, keepdims=True))
    r /= np.einsum("nk->n", r)[:, None]
    return sum(r[:, k:k + 1] * c for k, c in enumerate(cond))


def gmm_oracle(alpha_bar, weights, means, stds):
    """eps*(x_t, t) = (x_t - sqrt(ab) E[x_0 | x_t]) / sqrt(1 - ab), by linearity of eq. 4 in
    (x_0, eps), for the mixture of ``gmm_posterior_mean``."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)

    def model_fn(x, t):
        ab = alpha_bar[np.asarray(t)][:, None]
        x0 = gmm_posterior_mean(x.astype(np.float64), ab, weights, means, stds)
        return ((x - np.sqrt(ab) * x0) / np.sqrt(1 - ab)).astype(x.dtype)

    return model_fn


# ----------------------------------------------------------------------------- checks of the references


@given(st.lists(st.floats(1e-4, 0.99), min_size=1, max_size=30), st.floats(-2, 2), st.floats(-2, 2))
def test_ref_posterior_table_matches_ref_posterior(betas, x0, xt):
    for t, (c1, c2, var) in enumerate(ref_posterior_table(betas)):
        mean, v = ref_posterior(betas, t, x0, xt)
        assert math.isclose(c1 * x0 + c2 * xt, mean, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(var, v, rel_tol=1e-12)


def test_ref_marginal_two_steps_by_hand():
    # x_1 = sqrt(.9) x_0 + sqrt(.1) z1, x_2 = sqrt(.8) x_1 + sqrt(.2) z2
    # => mean sqrt(.72) x_0, variance .8 * .1 + .2 = .28 (= 1 - .72).
    c, v = ref_marginal([0.1, 0.2], 1)
    assert math.isclose(c, math.sqrt(0.72)) and math.isclose(v, 0.28)
    assert ref_marginal([0.1, 0.2], -1) == (1.0, 0.0)


@given(st.floats(0.01, 0.9), st.floats(0.01, 0.9), st.floats(-2, 2), st.floats(-2, 2))
def test_ref_posterior_against_brute_force_grid(b1, b2, x0, xt):
    """Bayes by numerically normalising prior x likelihood on a fine grid of x_{t-1}."""
    betas = [b1, b2]
    mean, var = ref_posterior(betas, 1, x0, xt)
    c, v = ref_marginal(betas, 0)
    grid = np.linspace(mean - 12 * math.sqrt(var), mean + 12 * math.sqrt(var), 20001)
    log_w = -(grid - c * x0) ** 2 / (2 * v) - (xt - math.sqrt(1 - b2) * grid) ** 2 / (2 * b2)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    grid_mean = (w * grid).sum()
    assert math.isclose(grid_mean, mean, rel_tol=1e-6, abs_tol=1e-6 * math.sqrt(var))
    assert math.isclose((w * (grid - grid_mean) ** 2).sum(), var, rel_tol=1e-5)


@given(st.floats(0.01, 0.99), st.floats(-1, 1), st.floats(0.1, 1.0), st.floats(-3, 3))
@example(ab=0.984375, mu=0.0, s=0.125, xt=2.0)  # posterior far in the prior's tail: once failed on a narrow grid
def test_gaussian_oracle_is_posterior_mean_of_eps(ab, mu, s, xt):
    """E[eps | x_t] by quadrature over x_0: eps = (x_t - sqrt(ab) x_0) / sqrt(1 - ab)."""
    # The posterior over x_0 lies between the prior (mu +- 10 s) and where the likelihood puts it
    # ((x_t +- 10 sqrt(1 - ab)) / sqrt(ab)); a grid over the prior alone cuts off its tail when x_t
    # is far out (ab=0.98, s=0.125, x_t=2 puts the posterior 8 s from mu).
    spread = 10 * math.sqrt(1 - ab)
    lo = min(mu - 10 * s, (xt - spread) / math.sqrt(ab))
    hi = max(mu + 10 * s, (xt + spread) / math.sqrt(ab))
    x0 = np.linspace(lo, hi, 200001)
    log_w = -(x0 - mu) ** 2 / (2 * s * s) - (xt - math.sqrt(ab) * x0) ** 2 / (2 * (1 - ab))
    w = np.exp(log_w - log_w.max())
    eps = (xt - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    expected = (w * eps).sum() / w.sum()
    got = gaussian_oracle(np.array([ab]), mu, s)(np.array([xt]), np.array([0]))[0]
    assert math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-7)


@given(st.floats(0.01, 0.99), st.floats(-3, 3), st.floats(-3, 3))
def test_gmm_posterior_mean_against_quadrature_in_1d(ab, xt, shift):
    weights, means, stds = [0.3, 0.7], [[-1.0 + shift], [1.5]], [0.3, 0.6]
    x0 = np.linspace(-8, 8, 80001)
    prior = sum(w / s * np.exp(-(x0 - m[0]) ** 2 / (2 * s * s)) for w, m, s in zip(weights, means, stds))
    like = np.exp(-(xt - math.sqrt(ab) * x0) ** 2 / (2 * (1 - ab)))
    expected = (x0 * prior * like).sum() / (prior * like).sum()
    got = gmm_posterior_mean(np.array([[xt]]), np.array([[ab]]), weights, means, stds)[0, 0]
    assert math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-7)
