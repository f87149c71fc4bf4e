"""The few-step samplers (dpmpp_3m, unipc) and noise-level lists against independent derivations:

- order of accuracy on the exact Gaussian model (closed-form ODE solution, as in test_samplers.py):
  DPM-Solver++(3M) and UniPC-2 (bh2) are third order;
- UniPC's order conditions: the rho it solves for reproduce phi_k's Taylor coefficients, and its
  corrector with no history is the trapezoidal rule in lambda;
- model calls (N for both), the last step returns D, first steps are DDIM.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from test_samplers import D_LIN, MU, S, Spy, exact_solution, gaussian_model, wiggly_model
from tinydiff.samplers import _unipc_coefficients, model_evaluations, sample_dpmpp_3m, sigmas_from_alphas_cumprod

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
