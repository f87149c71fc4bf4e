"""The few-step samplers (dpmpp_3m, unipc) and noise-level lists against independent derivations:

- order of accuracy on the exact Gaussian model (closed-form ODE solution, as in test_samplers.py):
  DPM-Solver++(3M) and UniPC-2 (bh2) are third order;
- UniPC's order conditions: the rho it solves for reproduce phi_k's Taylor coefficients, and its
  corrector with no history is the trapezoidal rule in lambda;
- model calls (N for both), the last step returns D, first steps are DDIM;
- the "few_step" noise levels and explicit sigma lists (walked as given, bad ones refused).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from test_samplers import D_LIN, MU, S, Spy, exact_solution, gaussian_model, wiggly_model, wiggly_model_float
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.samplers import (FEW_STEP_SIGMA_MAX, FEW_STEP_SIGMA_MIN, _unipc_coefficients, get_sigmas,
                               get_sigmas_exponential, model_evaluations, sample_dpmpp_3m,
                               sigmas_from_alphas_cumprod)

GRID = sigmas_from_alphas_cumprod(D_LIN.alphas_cumprod)


def slope(sampler, sigmas, steps):
    x_T = np.random.default_rng(0).standard_normal((64, 1))
    ref, _ = exact_solution(x_T, MU, S, GRID[-1], GRID[0])
    errors = [np.abs(D_LIN.sample(gaussian_model(D_LIN, MU, S), x_T.shape, sampler=sampler, steps=n,
                                  sigmas=sigmas, x_T=x_T) - ref).max() for n in steps]
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0], errors


@pytest.mark.parametrize("sampler", ["dpmpp_3m", "unipc"])
@pytest.mark.parametrize("sigmas", ["karras", "exponential"])
def test_third_order_on_gaussian_data(sampler, sigmas):
    # From 32 steps on the errors are asymptotic (at 16 Karras steps dpmpp_3m's is still pre-asymptotic).
    order, errors = slope(sampler, sigmas, [32, 64, 128, 256])
    assert 2.7 < order < 4.2, (sampler, sigmas, errors, order)


def test_third_order_beats_second_order_at_few_steps():
    """At 10-20 steps on exponential sigmas the third-order methods are already ahead of 2M."""
    x_T = np.random.default_rng(1).standard_normal((64, 1))
    ref, _ = exact_solution(x_T, MU, S, GRID[-1], GRID[0])
    for n in (16, 20):
        err = {s: np.abs(D_LIN.sample(gaussian_model(D_LIN, MU, S), x_T.shape, sampler=s, steps=n,
                                      sigmas="exponential", x_T=x_T) - ref).max()
               for s in ("dpmpp_2m", "dpmpp_3m", "unipc")}
        assert err["dpmpp_3m"] < err["dpmpp_2m"] and err["unipc"] < err["dpmpp_2m"], (n, err)


def test_unipc_coefficients_meet_the_order_conditions():
    """Zhao et al. 2023 Thm. 3.1: with B(h) = e^{-h} - 1 (hh = -h), sum_m rho_m r_m^(k-1) =
    k! phi_{k+1}(hh) hh / B(hh) for k = 1..p, where phi_{k+1}(z) = sum_j z^j / (j + k + 1)!
    (the series, evaluated independently here)."""
    def phi(k, z):
        return sum(z ** j / math.factorial(j + k) for j in range(40))

    for h in (0.3, 1.0, 2.5):
        hh = -h
        rks = [-0.7, -1.6, 1.0]
        rho = _unipc_coefficients(rks, h, predictor=False)
        for k in range(1, 4):
            lhs = sum(r * rk ** (k - 1) for r, rk in zip(rho, rks))
            assert lhs == pytest.approx(math.factorial(k) * phi(k + 1, hh) * hh / math.expm1(hh), rel=1e-9)
        # the predictor meets the first p - 1 conditions with the older points only
        rho_p = _unipc_coefficients(rks, h, predictor=True)
        for k in range(1, 3):
            lhs = sum(r * rk ** (k - 1) for r, rk in zip(rho_p, rks[:-1]))
            assert lhs == pytest.approx(math.factorial(k) * phi(k + 1, hh) * hh / math.expm1(hh), rel=1e-9)


class Quadratic:
    """D(x, sigma) = a + b lambda + c lambda^2 with lambda = -log sigma, independent of x. Then
    d x / d lambda = D - x (x_bar coordinates) has the closed-form solution
    x(l1) = e^{l0 - l1} x(l0) + [q(l)]_{l0}^{l1} weighted, q = p - p' + p'' (e^l q is an
    antiderivative of e^l p), which a third-order method hits exactly once it has three D's."""

    def __init__(self, a, b, c):
        self.a, self.b, self.c, self.calls = a, b, c, 0

    def __call__(self, x, sigma):
        self.calls += 1
        lam = -math.log(sigma)
        return np.full_like(x, self.a + self.b * lam + self.c * lam * lam)

    def exact(self, x, s0, s1):
        l0, l1 = -math.log(s0), -math.log(s1)
        q = lambda l: self.a + self.b * l + self.c * l * l - (self.b + 2 * self.c * l) + 2 * self.c  # noqa: E731
        return math.exp(l0 - l1) * (x - q(l0)) + q(l1)


def test_dpmpp_3m_is_exact_for_d_quadratic_in_lambda():
    """From its third step on DPM-Solver++(3M) is exact for D quadratic in lambda, on uneven steps;
    its second step (second order) is exact for D linear in lambda."""
    sigmas = [80.0, 20.0, 9.0, 3.0, 1.1, 0.4, 0.1]
    for model, first_exact in ((Quadratic(0.3, -0.2, 0.05), 2), (Quadratic(0.3, -0.2, 0.0), 1)):
        xs = [np.ones((2, 1))]
        sample_dpmpp_3m(model, xs[0], sigmas + [0.0], callback=lambda i, x, d: xs.append(x))
        for i in range(first_exact, len(sigmas) - 1):
            np.testing.assert_allclose(xs[i + 1], model.exact(xs[i], sigmas[i], sigmas[i + 1]), rtol=1e-12)
        assert model.calls == len(sigmas)


class XSpy(Spy):
    def __call__(self, xt, t):
        self.xs = getattr(self, "xs", []) + [xt.copy()]
        return super().__call__(xt, t)


@pytest.mark.parametrize("sampler", ["dpmpp_3m", "unipc"])
@pytest.mark.parametrize("steps", [1, 2, 3, 10])
@pytest.mark.parametrize("sigmas", [None, "exponential"])
def test_model_calls_first_step_and_last_step(sampler, steps, sigmas):
    model = wiggly_model if sigmas is None else (lambda x, t: wiggly_model(x, np.asarray(t)))
    spy = XSpy(model)
    x_T = np.random.default_rng(4).standard_normal((3, 2))
    out, traj = D_LIN.sample(spy, x_T.shape, sampler=sampler, steps=steps, sigmas=sigmas, x_T=x_T,
                             return_trajectory=True)
    assert len(spy.ts) == steps == model_evaluations(sampler, steps)
    if sigmas is None:  # the last step returns x_0 = D at the last call (DDPM eq. 4 solved for x_0)
        a = D_LIN.alphas_cumprod[int(spy.ts[-1][0])]
        np.testing.assert_allclose(out, (spy.xs[-1] - math.sqrt(1 - a) * spy.last) / math.sqrt(a), rtol=1e-10)
    if steps >= 2:  # the first step is DDIM, i.e. euler's first step
        _, euler = D_LIN.sample(model, x_T.shape, sampler="euler", steps=steps, sigmas=sigmas, x_T=x_T,
                                return_trajectory=True)
        np.testing.assert_allclose(traj[1], euler[1], rtol=1e-10)


# --------------------------------------------------------------------------- noise-level lists

def test_few_step_sigmas_are_geometric_between_their_ends():
    levels, fractional = get_sigmas(D_LIN.alphas_cumprod, 10, None, "few_step")
    assert fractional and levels[-1] == 0 and np.all(np.diff(levels) < 0)
    lo, hi = FEW_STEP_SIGMA_MIN, FEW_STEP_SIGMA_MAX
    np.testing.assert_allclose(levels[:-1], [hi * (lo / hi) ** (i / 9) for i in range(10)], rtol=1e-12)


def test_few_step_sigmas_clip_into_a_short_schedule():
    d = GaussianDiffusion(np.linspace(1e-4, 0.02, 50))   # sigma(T-1) ~ 0.8 < 40
    grid = sigmas_from_alphas_cumprod(d.alphas_cumprod)
    levels, _ = get_sigmas(d.alphas_cumprod, 5, None, "few_step")
    assert levels[0] == pytest.approx(grid[-1]) and levels[-2] == pytest.approx(max(grid[0], FEW_STEP_SIGMA_MIN))


def test_an_explicit_sigma_list_is_walked_as_given():
    """The model is called at t(sigma) of each listed level (log-sigma interpolation, written out)."""
    grid = sigmas_from_alphas_cumprod(D_LIN.alphas_cumprod)
    listed = [30.0, 4.0, 0.5, 0.05, 0.0]
    spy = Spy(lambda x, t: wiggly_model(x, np.asarray(t)))
    x_T = np.random.default_rng(3).standard_normal((3, 2))
    D_LIN.sample(spy, x_T.shape, sampler="unipc", sigmas=listed, x_T=x_T)
    want = [np.interp(np.log(s), np.log(grid), np.arange(len(grid))) for s in listed[:-1]]
    np.testing.assert_allclose([t[0] for t in spy.ts], want, rtol=1e-12)
    same = D_LIN.sample(wiggly_model_float, x_T.shape, sampler="dpmpp_2m", sigmas="exponential", steps=6, x_T=x_T)
    again = D_LIN.sample(wiggly_model_float, x_T.shape, sampler="dpmpp_2m", steps=6, x_T=x_T,
                         sigmas=get_sigmas_exponential(6, grid[0], grid[-1]))
    np.testing.assert_allclose(again, same, rtol=1e-12)


@pytest.mark.parametrize("listed, kw, match", [
    ([5.0, 6.0, 0.0], {}, "strictly decrease"),
    ([5.0, 1.0], {}, "end at 0"),
    ([500.0, 1.0, 0.0], {}, r"\[sigma\(0\), sigma\(T-1\)\]"),
    ([5.0, 0.001, 0.0], {}, r"\[sigma\(0\), sigma\(T-1\)\]"),
    ([5.0, float("nan"), 0.0], {}, "finite"),
    ([[5.0, 0.0]], {}, "one dimension"),
    (["a", 0.0], {}, "list of floats"),
    ([5.0, 1.0, 0.0], {"steps": 3}, "has 2 steps"),
    ([5.0, 1.0, 0.0], {"spacing": "trailing"}, "no spacing"),
])
def test_bad_sigma_lists_are_clear_errors(listed, kw, match):
    with pytest.raises(ValueError, match=match):
        D_LIN.sample(wiggly_model_float, (2, 3), sampler="euler", sigmas=listed, x_T=np.zeros((2, 3)), **kw)
