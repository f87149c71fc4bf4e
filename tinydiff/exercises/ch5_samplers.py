"""Chapter 5, samplers: Euler and Heun steps on the probability-flow ODE, and Karras's sigmas.

In EDM's coordinates (Karras et al. 2022, arXiv 2206.00364) x_bar = x_t / sqrt(alpha_bar_t) and
sigma = sqrt((1 - alpha_bar_t) / alpha_bar_t); the probability-flow ODE (eqs. 3-4) is
d x_bar / d sigma = (x_bar - D(x_bar, sigma)) / sigma with D the denoiser E[x_0 | x_bar].
For Gaussian data N(mu, s^2 I) everything is exact: D(x, sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu)
and x(sigma) - mu = (x(sigma_max) - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_max^2).
The steps are graded by their measured order of accuracy: the global error at sigma_min after N
steps, for N = 10, 20, 40, 80, must fall like N^-1 (Euler) or N^-2 (Heun): the log-log slope.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from tinydiff.exercises.ch1_gradients import _stub, away_from_zero, values
from tinydiff.exercises.grading import Exercise, Failure, call, describe, expect_close, expect_shape, for_all

SIGMA_MAX, SIGMA_MIN = 20.0, 0.05
STEP_COUNTS = (10, 20, 40, 80)


def gaussian_denoiser(mu: np.ndarray, s: float) -> Callable:
    def denoiser(x: np.ndarray, sigma: float) -> np.ndarray:
        return mu + s * s / (s * s + float(sigma) ** 2) * (x - mu)
    return denoiser


def exact_solution(x_max: np.ndarray, mu: np.ndarray, s: float, sigma: float) -> np.ndarray:
    return mu + (x_max - mu) * math.sqrt(s * s + sigma * sigma) / math.sqrt(s * s + SIGMA_MAX ** 2)


def measured_order(step: Callable, mu: np.ndarray, s: float, x_max: np.ndarray, example: str) -> tuple:
    """(slope, errors): the global error at SIGMA_MIN after N geometric steps from SIGMA_MAX."""
    denoiser = gaussian_denoiser(mu, s)
    truth = exact_solution(x_max, mu, s, SIGMA_MIN)
    errors = []
    for n in STEP_COUNTS:
        sigmas = np.geomspace(SIGMA_MAX, SIGMA_MIN, n + 1)
        x = x_max.copy()
        for a, b in zip(sigmas[:-1], sigmas[1:]):
            x = expect_shape(call(step, denoiser, x, float(a), float(b)), x_max.shape, "x_next", example)
        if not np.all(np.isfinite(x)):
            raise Failure("the ODE solution stays finite", example + f", N = {n} steps", truth, x)
        errors.append(float(np.abs(x - truth).max()))
    errs = np.maximum(np.array(errors), 1e-300)
    slope = -float(np.polyfit(np.log(STEP_COUNTS), np.log(errs), 1)[0])
    return slope, errors


def _examples() -> st.SearchStrategy:
    return st.integers(1, 3).flatmap(lambda d: st.tuples(values((d,)), st.floats(0.3, 3.0), away_from_zero((d,))))


def _grade_order(fn: Callable, name: str, order: int, low: float, high: float) -> str:
    found: list = []

    def prop(ex: tuple) -> None:
        mu, s, z = ex
        x_max = mu + SIGMA_MAX * z
        example = describe(mu=mu) + f", s = {s:.4g}, " + describe(x_sigma_max=x_max)
        slope, errors = measured_order(fn, mu, s, x_max, example)
        found.append(slope)
        if errors[-1] > 1e-2 * max(1.0, float(np.abs(x_max - mu).max()) / SIGMA_MAX * 10):
            raise Failure(f"{name} steps converge to the exact solution x(sigma) - mu = (x(sigma_max) - mu) "
                          "sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_max^2) as the steps shrink (a sign error in "
                          "d = (x - D) / sigma, or in sigma_next - sigma?)", example + f", sigma_max = {SIGMA_MAX}, "
                          f"sigma_min = {SIGMA_MIN}", "error -> 0", f"errors {[f'{e:.3g}' for e in errors]} at "
                          f"N = {list(STEP_COUNTS)}")
        if not low <= slope <= high:
            raise Failure(f"{name}'s method is order {order}: its global error falls like N^-{order}, a log-log "
                          f"slope of {order}; measured {slope:.2f}" + (" (Heun's correction must average the "
                          "slope at x and at the Euler prediction)" if order == 2 else ""),
                          example, f"slope {order} (within {low}..{high})", f"slope {slope:.2f}, errors "
                          f"{[f'{e:.3g}' for e in errors]} at N = {list(STEP_COUNTS)}")
    for_all(_examples(), prop, examples=8)
    mu, s = np.array([0.5]), 1.0
    x = np.array([3.0])
    expect_close(call(fn, gaussian_denoiser(mu, s), x, 2.0, 0.0), gaussian_denoiser(mu, s)(x, 2.0),
                 "a step to sigma_next = 0 is an Euler step and returns D(x, sigma) (Karras Alg. 1 line 6)",
                 "x = 3, sigma = 2, mu = 0.5, s = 1")
    return f"measured order of accuracy (log-log slope of the error at sigma_min): {np.median(found):.2f}"


def grade_euler(fn: Callable) -> str:
    return _grade_order(fn, "Euler", 1, 0.8, 1.3)


def grade_heun(fn: Callable) -> str:
    return _grade_order(fn, "Heun", 2, 1.7, 2.6)


def grade_karras_sigmas(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        n, sigma_min, ratio, rho = ex
        sigma_max = sigma_min * ratio
        example = f"n = {n}, sigma_min = {sigma_min:.4g}, sigma_max = {sigma_max:.4g}, rho = {rho}"
        got = expect_shape(call(fn, n, sigma_min, sigma_max, rho), (n + 1,), "the sigmas", example,
                           "n noise levels, then the final 0")
        expect_close(got[[0, n - 1, n]], np.array([sigma_max, sigma_min, 0.0]), "the sigmas run from sigma_max "
                     "down to sigma_min, then a final 0 (Karras eq. 5, sigma_N = 0)", example)
        roots = got[:n] ** (1.0 / rho)
        expect_close(np.diff(roots), np.full(n - 1, (roots[-1] - roots[0]) / (n - 1)),
                     "sigma_i^(1/rho) is evenly spaced (the steps crowd near sigma_min for rho = 7)", example)
    for_all(st.tuples(st.integers(2, 50), st.floats(0.002, 0.5), st.floats(2.0, 1e5), st.sampled_from([1.0, 3.0, 7.0])),
            prop)


EXERCISES = [
    Exercise("5.1", "euler_step", "an Euler step of the probability-flow ODE",
             _stub("euler_step(denoiser, x, sigma, sigma_next)", """
    One Euler step of the probability-flow ODE in EDM's form (Karras et al. 2022, eqs. 3-4;
    Alg. 1 lines 4-5): d = (x - D(x, sigma)) / sigma, x_next = x + (sigma_next - sigma) d.
    denoiser(x, sigma) -> D, an estimate of x_0 (x's shape); sigma, sigma_next: floats,
    sigma > 0, sigma_next >= 0. x: any shape. Return x_next.
    Derive d from d x/d sigma = -sigma grad log p(x; sigma) and Tweedie's formula
    grad log p = (D - x) / sigma^2.
"""), ("Two lines: the slope d, then the step.",),
             "tinydiff/samplers.py (euler); this step: tinydiff/exercises/solutions.py (euler_step)", grade_euler,
             teaches="the ODE view of sampling, and first-order accuracy"),
    Exercise("5.2", "heun_step", "a Heun step (Karras et al. 2022, Algorithm 1)",
             _stub("heun_step(denoiser, x, sigma, sigma_next)", """
    Heun's second-order step (Karras et al. 2022, Alg. 1 lines 4-8): the Euler prediction
    x_e = x + (sigma_next - sigma) d, d = (x - D(x, sigma)) / sigma; then, if sigma_next > 0,
    d' = (x_e - D(x_e, sigma_next)) / sigma_next and x_next = x + (sigma_next - sigma) (d + d') / 2.
    At sigma_next = 0 return the Euler prediction (d' would divide by 0).
"""), ("The trapezoidal rule: average the slope at both ends of the step.",
       "The second slope is evaluated at the Euler prediction x_e and sigma_next, not at x."),
             "tinydiff/samplers.py (heun); this step: tinydiff/exercises/solutions.py (heun_step)", grade_heun,
             teaches="why Heun needs half the steps of Euler: second-order accuracy"),
    Exercise("5.3", "karras_sigmas", "Karras's noise levels (eq. 5)",
             _stub("karras_sigmas(n, sigma_min, sigma_max, rho=7.0)", """
    Karras et al. 2022 eq. 5: sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) -
    sigma_max^(1/rho)))^rho for i = 0..n-1, then sigma_n = 0. Return the float64 array (n + 1,).
"""), ("np.linspace on sigma^(1/rho), then ** rho, then np.append(..., 0.0).",),
             "tinydiff/samplers.py; this one: tinydiff/exercises/solutions.py (karras_sigmas)", grade_karras_sigmas,
             teaches="where to spend the steps of an ODE solver"),
]
