"""Chapter 3, the forward process q: alpha_bar, two schedules, q(x_t | x_0), its posterior, and
the eps / x_0 / v conversions.

Independent references: q(x_t | x_0)'s moments by iterating the one-step kernel
x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps (DDPM eq. 2) as a recursion on mean coefficient
and variance; the posterior by Bayes' rule in precision form and by a Monte Carlo regression;
the cosine schedule through a double-angle form of f; v as the derivative of
x(phi) = cos(phi) x_0 + sin(phi) eps, by central differences in phi.

Index convention (tinydiff's, improved-diffusion's): t is the code index 0..T-1 of the paper's
step t + 1, so alpha_bar[t] = prod_{s <= t} (1 - beta_s) and "alpha_bar_{t-1}" at t = 0 is 1.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from tinydiff.exercises.ch1_gradients import _stub, values
from tinydiff.exercises.grading import Exercise, Failure, as_array, call, describe, expect_close, expect_shape, for_all

# --------------------------------------------------------------------------- independent references

def chain_moments(betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(c_t, v_t) with x_t | x_0 ~ N(c_t x_0, v_t), by iterating DDPM eq. 2 one step at a time."""
    c, v, cs, vs = 1.0, 0.0, [], []
    for b in betas:
        c, v = math.sqrt(1.0 - b) * c, (1.0 - b) * v + b
        cs.append(c)
        vs.append(v)
    return np.array(cs), np.array(vs)


def bayes_posterior(x0: np.ndarray, xt: np.ndarray, t: int, betas: np.ndarray) -> tuple[np.ndarray, float]:
    """q(x_{t-1} | x_t, x_0) by Bayes' rule in precision form: prior x_{t-1} | x_0 from the chain,
    likelihood x_t | x_{t-1} = N(sqrt(1 - beta_t) x_{t-1}, beta_t); precisions add, means are
    precision-weighted. At t = 0, x_{t-1} is x_0 itself (variance 0)."""
    if t == 0:
        return np.array(x0, dtype=np.float64), 0.0
    c, v = chain_moments(betas[:t])
    a = 1.0 - betas[t]
    precision = 1.0 / v[-1] + a / betas[t]
    var = 1.0 / precision
    return var * (c[-1] * x0 / v[-1] + math.sqrt(a) * xt / betas[t]), var


def monte_carlo_posterior(x0: float, t: int, betas: np.ndarray, n: int = 400_000,
                          seed: int = 0) -> tuple[float, float, float, float]:
    """Draw (x_{t-1}, x_t) given x_0 through the chain and regress x_{t-1} on x_t:
    (intercept, slope, residual variance, standard error of the slope)."""
    rng = np.random.default_rng(seed)
    c, v = chain_moments(betas[:t])
    prev = c[-1] * x0 + math.sqrt(v[-1]) * rng.standard_normal(n)
    xt = math.sqrt(1.0 - betas[t]) * prev + math.sqrt(betas[t]) * rng.standard_normal(n)
    slope, intercept = np.polyfit(xt, prev, 1)
    resid = prev - (intercept + slope * xt)
    return float(intercept), float(slope), float(resid.var()), float(resid.std() / (xt.std() * math.sqrt(n)))


# --------------------------------------------------------------------------- strategies

def schedules(min_t: int = 1, max_t: int = 40) -> st.SearchStrategy:
    return st.integers(min_t, max_t).flatmap(lambda n: values((n,), 1e-4, 0.2))


def with_timestep(min_t: int = 1) -> st.SearchStrategy:
    """(betas, t, x0, other) with t a valid code index and x0, other of shape (B, D)."""
    return st.tuples(schedules(min_t), st.integers(0, 1000), st.integers(1, 3), st.integers(1, 3)).flatmap(
        lambda p: st.tuples(st.just(p[0]), st.just(p[1] % len(p[0])),
                            values((p[2], p[3])), values((p[2], p[3]))))


def _typo_check(got: np.ndarray, betas: np.ndarray, t: int, correct: np.ndarray, what: str, example: str) -> None:
    """Name the seed notes' typo when the variance came out as 1 - alpha_t."""
    typo = np.full_like(correct, betas[t])  # 1 - alpha_t = beta_t
    if not np.allclose(got, correct) and np.allclose(got, typo):
        raise Failure(f"{what} is 1 - alpha_t = beta_t, the seed notes' typo: Var q(x_t | x_0) is "
                      "1 - alpha_bar_t with alpha_bar_t = prod_{s<=t} alpha_s (DDPM eq. 4)",
                      example, correct, got)


# --------------------------------------------------------------------------- graders

def grade_alpha_bar(fn: Callable) -> None:
    def prop(betas: np.ndarray) -> None:
        example = describe(betas=betas)
        got = expect_shape(call(fn, betas.copy()), betas.shape, "alpha_bar", example)
        c, v = chain_moments(betas)
        expect_close(got, c ** 2, "alpha_bar_t is the squared signal coefficient of x_t | x_0 after "
                     "iterating x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps from step 1 to t "
                     "(so alpha_bar[0] = 1 - beta[0], not 1)", example)
        expect_close(1.0 - got, v, "1 - alpha_bar_t equals the variance the chain accumulates", example)
    for_all(schedules(), prop)


def grade_linear_schedule(fn: Callable) -> None:
    def prop(T: int) -> None:
        example = f"T = {T}"
        got = expect_shape(call(fn, T), (T,), "the betas", example)
        scale = 1000.0 / T
        expect_close(got[[0, -1]], np.array([1e-4 * scale, 0.02 * scale]),
                     "the ends are beta_1 = 1e-4 (1000 / T) and beta_T = 0.02 (1000 / T) (DDPM sec. 4, "
                     "rescaled for T != 1000 as improved-diffusion does)", example)
        if T > 2:
            expect_close(np.diff(got), np.full(T - 1, (got[-1] - got[0]) / (T - 1)),
                         "the betas are evenly spaced (a linspace)", example)
    for_all(st.integers(21, 2000), prop)


def grade_cosine_schedule(fn: Callable) -> None:
    def prop(T: int) -> None:
        s, max_beta = 0.008, 0.999
        example = f"T = {T}, s = {s}, max_beta = {max_beta}"
        got = expect_shape(call(fn, T, s, max_beta), (T,), "the betas", example)
        if not np.all((got > 0) & (got <= max_beta)):
            raise Failure("every beta lies in (0, max_beta]: clip at max_beta (improved DDPM sec. 3.2)",
                          example, None, got)
        def f(tau):
            return 0.5 * (1.0 + np.cos(np.pi * (tau + s) / (1.0 + s)))  # cos^2(a) = (1 + cos 2a) / 2
        tau = np.arange(1, T + 1) / T
        alpha_bar = np.cumprod(1.0 - got)
        unclipped = np.cumprod(got < max_beta) > 0
        expect_close(alpha_bar[unclipped], (f(tau) / f(0.0))[unclipped],
                     "prod_{s<=t} (1 - beta_s) = f(t/T) / f(0) with f(tau) = cos^2(((tau + s)/(1 + s)) pi/2) "
                     "(improved DDPM eq. 17; step t of 1..T is tau = t/T)", example, rtol=1e-6)
        if got[-1] != max_beta:
            raise Failure("the last beta, 1 - f(1)/f((T-1)/T) = 1, is clipped to max_beta", example,
                          max_beta, got[-1])
    for_all(st.integers(2, 2000), prop)


def grade_q_mean_variance(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t, x0, _ = ex
        example = describe(betas=betas) + f", t = {t}, " + describe(x0=x0)
        out = call(fn, x0.copy(), t, betas.copy())
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Failure("q_mean_variance returns (mean, variance)", example)
        mean, var = (as_array(o, n) for o, n in zip(out, ("the mean", "the variance")))
        c, v = chain_moments(betas)
        var = expect_shape(np.broadcast_to(var, x0.shape) if var.ndim == 0 else var, x0.shape,
                           "the variance", example)
        _typo_check(var, betas, t, np.full(x0.shape, v[t]), "the variance", example)
        expect_close(mean, c[t] * x0, "the mean of q(x_t | x_0) is the chain's signal coefficient "
                     "sqrt(alpha_bar_t) times x_0 (DDPM eq. 4)", example)
        expect_close(var, np.full(x0.shape, v[t]), "the variance of q(x_t | x_0) equals what iterating "
                     "q(x_s | x_{s-1}) accumulates, 1 - alpha_bar_t (DDPM eq. 4)", example)
    for_all(with_timestep(2), prop)


def grade_q_sample(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t, x0, noise = ex
        example = describe(betas=betas) + f", t = {t}, " + describe(x0=x0, noise=noise)
        c, v = chain_moments(betas)
        at_zero = expect_shape(call(fn, x0.copy(), t, np.zeros_like(noise), betas.copy()), x0.shape,
                               "x_t", example)
        expect_close(at_zero, c[t] * x0, "with eps = 0, x_t is the mean sqrt(alpha_bar_t) x_0 of the chain",
                     example)
        unit = as_array(call(fn, x0.copy(), t, np.ones_like(noise), betas.copy()), "x_t") - at_zero
        if not np.allclose(unit, math.sqrt(v[t])) and np.allclose(unit, v[t]):
            raise Failure("the noise is scaled by the variance 1 - alpha_bar_t; x_t = sqrt(alpha_bar_t) x_0 "
                          "+ sqrt(1 - alpha_bar_t) eps needs the standard deviation (variance for std)",
                          example, np.full(x0.shape, math.sqrt(v[t])), unit)
        if not np.allclose(unit, math.sqrt(v[t])) and np.allclose(unit, math.sqrt(betas[t])):
            raise Failure("the noise is scaled by sqrt(1 - alpha_t), the seed notes' typo: it must be "
                          "sqrt(1 - alpha_bar_t) (DDPM eq. 4)", example, np.full(x0.shape, math.sqrt(v[t])), unit)
        got = as_array(call(fn, x0.copy(), t, noise.copy(), betas.copy()), "x_t")
        expect_close(got, c[t] * x0 + math.sqrt(v[t]) * noise, "x_t - mean is the chain's standard "
                     "deviation sqrt(1 - alpha_bar_t) times eps", example)
    for_all(with_timestep(2), prop)
    # a Monte Carlo look at the draws' moments, against the iterated chain
    betas = np.linspace(1e-3, 0.1, 20)
    rng = np.random.default_rng(0)
    x0 = np.full((200_000, 1), 0.7)
    xt = as_array(call(fn, x0, 15, rng.standard_normal(x0.shape), betas), "x_t")
    c, v = chain_moments(betas)
    if abs(xt.mean() - 0.7 * c[15]) > 0.01 or abs(xt.var() / v[15] - 1) > 0.02:
        raise Failure("200 000 draws of q(x_t | x_0) have the chain's mean and variance",
                      "betas = linspace(1e-3, 0.1, 20), t = 15, x0 = 0.7", (0.7 * c[15], v[15]),
                      (float(xt.mean()), float(xt.var())))


def _posterior_example(ex: tuple) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, str]:
    betas, t, x0, xt = ex
    return betas, t, x0, xt, describe(betas=betas) + f", t = {t}, " + describe(x0=x0, xt=xt)


def grade_posterior_variance(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t, _, _, example = _posterior_example(ex)
        got = as_array(call(fn, t, betas.copy()), "beta_tilde_t")
        _, expected = bayes_posterior(np.zeros(1), np.zeros(1), t, betas)
        expect_close(got.reshape(()) if got.size == 1 else got, np.float64(expected),
                     "beta_tilde_t = 1 / (1 / (1 - alpha_bar_{t-1}) + alpha_t / beta_t), Bayes' rule in "
                     "precision form (DDPM eq. 7); 0 at t = 0", example)
    for_all(with_timestep(1), prop)
    betas = np.linspace(1e-3, 0.2, 10)
    _, _, resid, _ = monte_carlo_posterior(0.3, 6, betas)
    got = float(as_array(call(fn, 6, betas), "beta_tilde_t").reshape(-1)[0])
    if abs(got / resid - 1) > 0.02:
        raise Failure("beta_tilde_t matches the residual variance of x_{t-1} regressed on x_t in 400 000 "
                      "draws of the chain (Monte Carlo)", "betas = linspace(1e-3, 0.2, 10), t = 6", resid, got)


def grade_posterior_mean(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t, x0, xt, example = _posterior_example(ex)
        got = call(fn, x0.copy(), xt.copy(), t, betas.copy())
        expected, _ = bayes_posterior(x0, xt, t, betas)
        expect_close(got, expected, "mu_tilde_t is the precision-weighted mean of the prior "
                     "x_{t-1} | x_0 and the likelihood x_t | x_{t-1} (Bayes' rule; DDPM eq. 7)", example)
    for_all(with_timestep(1), prop)
    betas = np.linspace(1e-3, 0.2, 10)
    intercept, slope, _, se = monte_carlo_posterior(0.3, 6, betas)
    points = np.array([[-1.0], [0.0], [1.0]])
    got = as_array(call(fn, np.full((3, 1), 0.3), points, 6, betas), "mu_tilde")
    expected = intercept + slope * points
    if got.shape != expected.shape or np.abs(got - expected).max() > 10 * se + 1e-3:
        raise Failure("mu_tilde_t(x_0, x_t) is the regression line of x_{t-1} on x_t in 400 000 draws "
                      "of the chain (Monte Carlo)", "betas = linspace(1e-3, 0.2, 10), t = 6, x0 = 0.3, "
                      "xt = [-1, 0, 1]", expected, got)


def _forward(x0: np.ndarray, eps: np.ndarray, t: int, betas: np.ndarray) -> np.ndarray:
    c, v = chain_moments(betas)
    return c[t] * x0 + math.sqrt(v[t]) * eps


def grade_x0_from_eps(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t, x0, eps = ex
        xt = _forward(x0, eps, t, betas)
        example = describe(betas=betas) + f", t = {t}, " + describe(xt=xt, eps=eps)
        expect_close(call(fn, xt.copy(), t, eps.copy(), betas.copy()), x0,
                     "given x_t made from x_0 and eps by the chain, predict_x0_from_eps returns that x_0", example,
                     rtol=1e-6, atol=1e-7)
    for_all(with_timestep(), prop)


def grade_eps_from_x0(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t, x0, eps = ex
        xt = _forward(x0, eps, t, betas)
        example = describe(betas=betas) + f", t = {t}, " + describe(xt=xt, x0=x0)
        expect_close(call(fn, xt.copy(), t, x0.copy(), betas.copy()), eps,
                     "given x_t made from x_0 and eps by the chain, predict_eps_from_x0 returns that eps", example,
                     rtol=1e-5, atol=1e-6)
    for_all(with_timestep(), prop)


def _phi(t: int, betas: np.ndarray) -> float:
    c, v = chain_moments(betas)
    return math.atan2(math.sqrt(v[t]), c[t])


def _v_by_differences(x0: np.ndarray, eps: np.ndarray, phi: float, h: float = 1e-5) -> np.ndarray:
    def x(p):
        return math.cos(p) * x0 + math.sin(p) * eps
    return (x(phi + h) - x(phi - h)) / (2 * h)


def grade_get_v(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t, x0, eps = ex
        example = describe(betas=betas) + f", t = {t}, " + describe(x0=x0, eps=eps)
        expect_close(call(fn, x0.copy(), eps.copy(), t, betas.copy()), _v_by_differences(x0, eps, _phi(t, betas)),
                     "v is the velocity d x_t / d phi of x_t = cos(phi) x_0 + sin(phi) eps, phi = "
                     "atan(sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t)) (central differences in phi)", example,
                     rtol=1e-5, atol=1e-7)
    for_all(with_timestep(), prop)


def grade_x0_from_v(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t, x0, eps = ex
        xt = _forward(x0, eps, t, betas)
        v = _v_by_differences(x0, eps, _phi(t, betas))
        example = describe(betas=betas) + f", t = {t}, " + describe(xt=xt, v=v)
        expect_close(call(fn, xt.copy(), t, v.copy(), betas.copy()), x0,
                     "from x_t and its velocity v = d x_t / d phi, predict_x0_from_v recovers x_0", example,
                     rtol=1e-5, atol=1e-6)
    for_all(with_timestep(), prop)


SIG = ("x0, xt, eps, v are arrays of shape (B, D); t is an int code index in 0..T-1 (the paper's\n"
       "    t + 1); betas is the float64 schedule (T,). Reuse your alpha_bar from 3.1.")

EXERCISES = [
    Exercise("3.1", "alpha_bar", "alpha_bar_t = prod_{s<=t} (1 - beta_s) from the betas",
             _stub("alpha_bar(betas)", """
    alpha_t = 1 - beta_t and alpha_bar_t = prod_{s=1}^{t} alpha_s (DDPM sec. 2, before eq. 4).
    betas: float64 (T,); entry t (0-indexed) is the paper's beta_{t+1}. Return alpha_bar (T,),
    entry t = prod_{s<=t} (1 - betas[s]).
    Derive: iterate x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps_t (eq. 2) and show that
    x_t | x_0 ~ N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).
"""), ("np.cumprod.",), "tinydiff/diffusion.py (GaussianDiffusion.__init__: alphas_cumprod)", grade_alpha_bar,
             teaches="how T small noising steps compose into one Gaussian"),
    Exercise("3.2", "linear_betas", "the linear schedule (DDPM sec. 4, rescaled with T)",
             _stub("linear_betas(T)", """
    DDPM's schedule: beta from 1e-4 to 0.02, linearly, for T = 1000 (DDPM sec. 4). For other T,
    improved-diffusion multiplies both ends by 1000 / T so the total noise stays comparable.
    Return the float64 betas (T,).
"""), ("np.linspace(scale * 1e-4, scale * 0.02, T) with scale = 1000 / T.",),
             "tinydiff/schedules.py (make_beta_schedule('linear'))", grade_linear_schedule,
             teaches="DDPM's schedule and why it scales with T"),
    Exercise("3.3", "cosine_betas", "the cosine schedule (improved DDPM eq. 17)",
             _stub("cosine_betas(T, s=0.008, max_beta=0.999)", """
    improved DDPM eq. 17: alpha_bar_t = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi / 2),
    and beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, clipped at max_beta (sec. 3.2) to avoid the
    singularity at t = T. Return the float64 betas (T,) for steps t = 1..T.
"""), ("beta_t = min(1 - f(t/T) / f((t-1)/T), max_beta) for t = 1..T.",
       "Off by one? Entry 0 is step t = 1: the ratio f(1/T) / f(0)."),
             "tinydiff/schedules.py (betas_for_alpha_bar, cosine_alpha_bar)", grade_cosine_schedule,
             teaches="a schedule defined by alpha_bar, not by beta"),
    Exercise("3.4", "q_mean_variance", "mean and variance of q(x_t | x_0) (DDPM eq. 4)",
             _stub("q_mean_variance(x0, t, betas)", f"""
    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)   (DDPM eq. 4).
    Return (mean, variance), both of x0's shape.
    {SIG}
    Careful: some notes write the variance as (1 - alpha_t). Derive eq. 4 from eq. 2 to see why
    it must be alpha_bar.
"""), ("Use alpha_bar(betas)[t].", "variance = np.full_like(x0, 1 - alpha_bar_t)."),
             "tinydiff/diffusion.py (GaussianDiffusion.q_mean_variance)", grade_q_mean_variance,
             teaches="the closed form of the forward process, and the (1 - alpha_t) typo"),
    Exercise("3.5", "q_sample", "draw x_t ~ q(x_t | x_0) by reparameterization",
             _stub("q_sample(x0, t, noise, betas)", f"""
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, eps = noise ~ N(0, I)
    (DDPM eq. 4; Algorithm 1 line 5). Return x_t of x0's shape.
    {SIG}
"""), ("Scale eps by the standard deviation, not the variance.",),
             "tinydiff/diffusion.py (GaussianDiffusion.q_sample)", grade_q_sample,
             teaches="the reparameterization that makes training one line"),
    Exercise("3.6", "posterior_variance", "beta_tilde_t, the variance of q(x_{t-1} | x_t, x_0) (eq. 7)",
             _stub("posterior_variance(t, betas)", """
    beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t   (DDPM eq. 7).
    t: int code index; alpha_bar_{t-1} at t = 0 is 1 (so beta_tilde = 0 there). Return a float.
    Derive it with Bayes' rule: q(x_{t-1} | x_t, x_0) is proportional to
    q(x_t | x_{t-1}) q(x_{t-1} | x_0); the precisions (inverse variances) add.
"""), ("alpha_bar_prev = 1 at t = 0, else alpha_bar[t - 1].",),
             "tinydiff/diffusion.py (GaussianDiffusion.__init__: posterior_variance)", grade_posterior_variance,
             teaches="Bayes' rule for Gaussians in precision form"),
    Exercise("3.7", "posterior_mean", "mu_tilde_t(x_t, x_0), the mean of q(x_{t-1} | x_t, x_0) (eq. 7)",
             _stub("posterior_mean(x0, xt, t, betas)", f"""
    mu_tilde_t = sqrt(alpha_bar_{{t-1}}) beta_t / (1 - alpha_bar_t) x_0
               + sqrt(alpha_t) (1 - alpha_bar_{{t-1}}) / (1 - alpha_bar_t) x_t   (DDPM eq. 7).
    {SIG}
    Derive it from the precision-weighted means in 3.6's Bayes' rule.
"""), ("alpha_t = 1 - betas[t]; alpha_bar_{t-1} = 1 at t = 0.",),
             "tinydiff/diffusion.py (GaussianDiffusion.q_posterior)", grade_posterior_mean,
             teaches="the target every reverse step imitates"),
    Exercise("3.8", "predict_x0_from_eps", "x_0 from x_t and eps (eq. 4 solved for x_0)",
             _stub("predict_x0_from_eps(xt, t, eps, betas)", f"""
    Solve x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps for x_0 (DDPM eq. 4; used in
    eq. 15 and by DDIM eq. 12). {SIG}
"""), ("x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).",),
             "tinydiff/diffusion.py (GaussianDiffusion.predict_x0_from_eps)", grade_x0_from_eps,
             teaches="what a noise prediction says about the clean image"),
    Exercise("3.9", "predict_eps_from_x0", "eps from x_t and x_0",
             _stub("predict_eps_from_x0(xt, t, x0, betas)", f"""
    Solve x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps for eps. {SIG}
"""), ("eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t).",),
             "tinydiff/diffusion.py (GaussianDiffusion.predict_eps_from_x0)", grade_eps_from_x0,
             teaches="converting an x_0-predicting model to an eps-predicting one"),
    Exercise("3.10", "get_v", "the v target (Salimans & Ho 2022, sec. 4)",
             _stub("get_v(x0, eps, t, betas)", f"""
    With alpha_bar_t = cos^2(phi), x_t = cos(phi) x_0 + sin(phi) eps lies on a circle;
    v = d x_t / d phi = cos(phi) eps - sin(phi) x_0 = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0
    (Salimans & Ho 2022, arXiv 2202.00512, sec. 4). {SIG}
"""), ("v = sqrt(alpha_bar_t) * eps - sqrt(1 - alpha_bar_t) * x0.",),
             "tinydiff/diffusion.py (GaussianDiffusion.get_v)", grade_get_v,
             teaches="the v-parameterization as a velocity on a circle"),
    Exercise("3.11", "predict_x0_from_v", "x_0 from x_t and v",
             _stub("predict_x0_from_v(xt, t, v, betas)", f"""
    Rotate back: x_0 = cos(phi) x_t - sin(phi) v = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v.
    Derive it from 3.10. {SIG}
"""), ("Substitute x_t and v from 3.10 and use cos^2 + sin^2 = 1.",),
             "tinydiff/diffusion.py (GaussianDiffusion.predict_x0_from_v)", grade_x0_from_v,
             teaches="why v-prediction is a rotation of (x_0, eps)"),
]
