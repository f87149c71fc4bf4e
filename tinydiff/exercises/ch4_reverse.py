"""Chapter 4, the reverse process and training: the loss of Algorithm 1, a DDPM step
(Algorithm 2), a DDIM step (eq. 12), DDIM's timestep list, the DDIM sampling loop, and Algorithm 2
end to end on the toy moons.

Independent references: the chain's moments and Bayes' posterior from chapter 3; a model that
knows x_0 (so its eps is exact) for which the loss must vanish, DDPM's mean must be the Bayes
posterior mean and any DDIM chain must land on x_0 exactly; DDIM at eta = 1 against a DDPM step
built from Bayes' rule; the moons sampled with the exact denoiser of a fixed training set and
scored by sliced Wasserstein-2 against the data-vs-data floor (``tinydiff.evaluate``).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from tinydiff.exercises.ch1_gradients import _stub, values
from tinydiff.exercises.ch3_forward import bayes_posterior, chain_moments, with_timestep
from tinydiff.exercises.grading import Exercise, Failure, as_array, call, describe, expect_close, expect_shape, for_all


def knows_x0(x0: np.ndarray, betas: np.ndarray, calls: list | None = None) -> Callable:
    """An eps model that knows the data x_0 (B, D): eps = (x_t - c_t x_0) / sqrt(v_t), exact."""
    c, v = chain_moments(betas)

    def model(xt: np.ndarray, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)
        if calls is not None:
            calls.append(t.copy())
        if t.shape != (xt.shape[0],) or t.dtype.kind not in "iu":
            raise Failure(f"the model takes t as an integer array of shape (B,) = ({xt.shape[0]},); "
                          f"got {t.dtype} of shape {t.shape}")
        if t.min() < 0 or t.max() >= len(betas):
            raise Failure(f"the model was called with t outside 0..T-1 = 0..{len(betas) - 1}: {t}")
        return (xt - c[t][:, None] * x0) / np.sqrt(v[t])[:, None]
    return model


def grade_loss(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        betas, t0, x0, noise = ex
        t = (t0 + 7 * np.arange(len(x0))) % len(betas)  # one timestep per example
        example = describe(betas=betas, t=t, x0=x0, noise=noise)
        exact = as_array(call(fn, knows_x0(x0, betas), x0.copy(), t, noise.copy(), betas.copy()), "the loss")
        if exact.size != 1:
            raise Failure("the loss is one number, the mean of ||eps - eps_theta(x_t, t)||^2 over the batch",
                          example, (), exact.shape)
        if abs(float(exact)) > 1e-10:
            raise Failure("a model that recovers eps exactly from x_t = sqrt(alpha_bar_t) x_0 + "
                          "sqrt(1 - alpha_bar_t) eps (DDPM eq. 4) has loss 0: is x_t built with alpha_bar "
                          "at the right t (no off-by-one), and is the model called with that t?", example,
                          0.0, float(exact))
        zero = as_array(call(fn, lambda xt, tt: np.zeros_like(xt), x0.copy(), t, noise.copy(), betas.copy()),
                        "the loss")
        expect_close(zero.reshape(()), np.float64(np.mean(noise ** 2)), "a model that predicts 0 has "
                     "loss mean(eps^2): the loss is the mean squared error against eps (Algorithm 1 line 5)",
                     example)
    for_all(with_timestep(2), prop)


def grade_ddpm_step(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        (betas, t, x0, eps), variance, z = ex
        z = np.resize(z, x0.shape)
        c, v = chain_moments(betas)
        xt = c[t] * x0 + math.sqrt(v[t]) * eps
        example = describe(betas=betas) + f", t = {t}, variance = {variance!r}, " + describe(x0=x0, eps=eps, z=z)
        mean = expect_shape(call(fn, eps.copy(), xt.copy(), t, np.zeros_like(z), betas.copy(), variance),
                            x0.shape, "x_{t-1}", example)
        post_mean, post_var = bayes_posterior(x0, xt, t, betas)
        expect_close(mean, post_mean, "with the true eps, the mean of p(x_{t-1} | x_t) (Algorithm 2 line 4, "
                     "eq. 11) equals the Bayes posterior mean of q(x_{t-1} | x_t, x_0) (eq. 7)", example,
                     rtol=1e-6, atol=1e-7)
        got = as_array(call(fn, eps.copy(), xt.copy(), t, z.copy(), betas.copy(), variance), "x_{t-1}")
        sigma = 0.0 if t == 0 else math.sqrt(betas[t] if variance == "beta" else post_var)
        scale = (got - mean)
        if t > 0 and np.abs(z).max() > 0.1:
            wrong = betas[t] if variance == "beta" else post_var
            if not np.allclose(scale, sigma * z, atol=1e-8) and np.allclose(scale, wrong * z, atol=1e-8):
                raise Failure(f"sigma_t z adds noise with standard deviation sigma_t = sqrt({variance}_t); you "
                              f"scaled z by the variance {variance}_t (variance for std)", example, sigma * z, scale)
        expect_close(scale, sigma * z, "the noise term is sigma_t z with sigma_t^2 = beta_t ('beta') or "
                     "beta_tilde_t ('beta_tilde', the Bayes posterior variance), and no noise at the last "
                     "step t = 0 (Algorithm 2, DDPM sec. 3.2)", example, rtol=1e-6, atol=1e-8)
    for_all(st.tuples(with_timestep(2), st.sampled_from(["beta", "beta_tilde"]), values((6,), -2, 2)), prop)


def _ddpm_reference(eps: np.ndarray, xt: np.ndarray, t: int, z: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """DDPM's step with sigma^2 = beta_tilde, from Bayes: mu_tilde(x0_hat, x_t) + sqrt(beta_tilde) z."""
    c, v = chain_moments(betas)
    x0_hat = (xt - math.sqrt(v[t]) * eps) / c[t]
    mean, var = bayes_posterior(x0_hat, xt, t, betas)
    return mean + math.sqrt(var) * z


def grade_ddim_step(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        (betas, t, x0, eps), back, z = ex
        z = np.resize(z, x0.shape)
        c, v = chain_moments(betas)
        xt = c[t] * x0 + math.sqrt(v[t]) * eps
        for t_prev in sorted({max(t - 1 - back, -1), -1}, reverse=True):  # always the last step too
            example = describe(betas=betas) + f", t = {t}, t_prev = {t_prev}, " + describe(x0=x0, eps=eps)
            got = expect_shape(call(fn, eps.copy(), xt.copy(), t, t_prev, betas.copy(), 0.0, None), x0.shape,
                               "x_{t_prev}", example)
            if t_prev == -1:
                if not np.allclose(got, x0) and np.allclose(got, c[0] * x0 + math.sqrt(v[0]) * eps):
                    raise Failure("the step to t_prev = -1 must use alpha_bar_prev = 1 and land on x_0 itself "
                                  "(DDIM's final alpha_bar_prev is 1, not alpha_bar at t = 0)", example, x0, got)
                expect_close(got, x0, "with the true eps, the step to t_prev = -1 (alpha_bar_prev = 1) returns "
                             "x_0", example, rtol=1e-6, atol=1e-7)
            else:
                expect_close(got, c[t_prev] * x0 + math.sqrt(v[t_prev]) * eps, "with eta = 0 and the true eps, "
                             "x_{t_prev} = sqrt(alpha_bar_prev) x_0 + sqrt(1 - alpha_bar_prev) eps: the same "
                             "x_0 and eps, at the earlier noise level (DDIM eq. 12)", example, rtol=1e-6,
                             atol=1e-7)
        example1 = describe(betas=betas) + f", t = {t}, t_prev = {t - 1}, eta = 1, " + describe(x0=x0, eps=eps, z=z)
        got1 = as_array(call(fn, eps.copy(), xt.copy(), t, t - 1, betas.copy(), 1.0, z.copy()), "x_{t-1}")
        expect_close(got1, _ddpm_reference(eps, xt, t, z, betas),
                     "with eta = 1 and t_prev = t - 1, DDIM's step is DDPM's ancestral step with sigma^2 = "
                     "beta_tilde_t: mu_tilde(x0_hat, x_t) + sqrt(beta_tilde_t) z (DDIM eq. 16, sec. 4.1)",
                     example1, rtol=1e-6, atol=1e-7)
    for_all(st.tuples(with_timestep(2), st.integers(0, 3), values((6,), -2, 2)), prop)


def grade_ddim_timesteps(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        T, steps = ex
        steps = 1 + steps % T
        example = f"T = {T}, steps = {steps}"
        got = as_array(call(fn, T, steps), "the timesteps")
        if got.shape != (steps,):
            raise Failure("there are exactly `steps` timesteps", example, (steps,), got.shape)
        if not np.all(got == np.round(got)):
            raise Failure("the timesteps are integers", example, None, got)
        if got.min() < 0 or got.max() > T - 1:
            raise Failure(f"code indices lie in 0..T-1 = 0..{T - 1} (off by one?)", example, None, got)
        if steps > 1 and not np.all(np.diff(got) > 0):
            raise Failure("the timesteps are strictly increasing (distinct)", example, None, got)
        if got[-1] != T - 1:
            raise Failure("the last timestep is T - 1: sampling must start from pure noise at the last step",
                          example, T - 1, got[-1])
        if steps > 1 and got[0] != 0:
            raise Failure("the first timestep is 0: the chain must end at the least noisy step", example, 0, got[0])
        if steps > 2:
            gaps = np.diff(got)
            if gaps.max() - gaps.min() > 1:
                raise Failure("the timesteps are evenly spread: gaps differ by at most 1", example, None, got)
    for_all(st.tuples(st.integers(1, 1000), st.integers(0, 1000)), prop)


def grade_ddim_sample(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        (betas, _, x0, x_T), steps = ex
        steps = 1 + steps % len(betas)
        calls: list = []
        example = describe(betas=betas) + f", steps = {steps}, " + describe(x0=x0, x_T=x_T)
        got = expect_shape(call(fn, knows_x0(x0, betas, calls), x_T.copy(), betas.copy(), steps), x0.shape,
                           "the sample", example)
        seen = [int(t[0]) for t in calls]
        if len(seen) != steps:
            raise Failure(f"the model is called once per timestep, {steps} times", example, steps, len(seen))
        if seen[0] != len(betas) - 1 or seen != sorted(seen, reverse=True) or len(set(seen)) != steps:
            raise Failure("the model is called at your ddim_timesteps in decreasing order, from T - 1", example,
                          None, np.array(seen))
        c, v = chain_moments(betas)
        eps0 = (x_T - c[-1] * x0) / math.sqrt(v[-1])  # the fixed eps every exact step keeps
        if not np.allclose(got, x0) and np.allclose(got, c[0] * x0 + math.sqrt(v[0]) * eps0, atol=1e-6):
            raise Failure("DDIM's final step must use alpha_bar_prev = 1 (t_prev = -1); your chain stopped at "
                          "alpha_bar at t = 0, a little noise short of x_0", example, x0, got)
        expect_close(got, x0, "with a model that knows x_0 exactly, a deterministic DDIM chain (eta = 0) "
                     "ends exactly on x_0, whatever the number of steps", example, rtol=1e-6, atol=1e-6)
    for_all(st.tuples(with_timestep(2), st.integers(0, 100)), prop)


# --------------------------------------------------------------------------- the moons, end to end

MOONS_T = 100          # a short linear schedule (betas scaled by 1000 / T, improved-diffusion's rule)
MOONS_TRAIN = 1000     # the training set whose exact denoiser plays the trained model
MOONS_N = 1000         # samples
MOONS_MAX_RATIO = 1.5  # pass: sliced W2 within 1.5x the data-vs-data floor (1 = indistinguishable)


def moons_model(betas: np.ndarray) -> Callable:
    """The exact eps of the empirical moons distribution (a fixed training set), at each x_t:
    E[x_0 | x_t] = softmax-weighted training points, eps = (x_t - c_t E[x_0|x_t]) / sqrt(v_t). It is
    what a perfectly trained network converges to (it memorises the training set)."""
    from scipy.special import softmax

    from tinydiff.data.toy2d import sample_toy2d  # the data module is only needed here
    data = sample_toy2d("moons", MOONS_TRAIN, np.random.default_rng(2024))
    c, v = chain_moments(betas)
    norms = (data ** 2).sum(1)

    def model(xt: np.ndarray, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)
        if t.shape != (len(xt),) or t.dtype.kind not in "iu" or t.min() < 0 or t.max() >= len(betas):
            raise Failure(f"the model takes t as integers in 0..{len(betas) - 1} of shape (B,); got {t}")
        ct, vt = c[t][:, None], v[t][:, None]
        # |x_t - c_t x_i|^2 for every training point x_i, expanded so the cross term is one GEMM
        d2 = (xt ** 2).sum(1)[:, None] - 2 * ct * (xt @ data.T) + ct ** 2 * norms[None, :]
        x0 = softmax(-d2 / (2 * vt), axis=1) @ data
        return (xt - ct * x0) / np.sqrt(vt)
    return model


def grade_moons(fn: Callable) -> str:
    from tinydiff.evaluate import toy2d_metrics  # sliced W2 and its floor, as `tinydiff eval` reports
    from tinydiff.schedules import make_beta_schedule
    betas = make_beta_schedule("linear", MOONS_T)
    # Algorithm 2 on a point distribution first: with a model that knows x_0, the last step's mean is x_0.
    x0 = np.array([[0.5, -1.0], [2.0, 0.25]])
    rng = np.random.default_rng(0)
    got = expect_shape(call(fn, knows_x0(x0, betas), rng.standard_normal(x0.shape), betas, rng), x0.shape,
                       "the sample", "a model that knows x_0")
    expect_close(got, x0, "with a model that knows x_0, Algorithm 2's last step (t = 0, no noise) returns "
                 "x_0 exactly", f"x0 = {x0.tolist()}, T = {MOONS_T}, linear schedule", rtol=1e-6, atol=1e-6)
    rng = np.random.default_rng(1)
    samples = expect_shape(call(fn, moons_model(betas), rng.standard_normal((MOONS_N, 2)), betas, rng),
                           (MOONS_N, 2), "the sample", "moons")
    if not np.all(np.isfinite(samples)):
        raise Failure("the moons samples are finite", f"{MOONS_N} samples, T = {MOONS_T}")
    metrics = toy2d_metrics(samples, "moons", seed=0, repeats=3)
    line = (f"moons, {MOONS_N} samples with the exact denoiser of {MOONS_TRAIN} training points, "
            f"T = {MOONS_T}: sliced W2 {metrics.sw:.4f}, floor {metrics.sw_floor:.4f}, "
            f"ratio {metrics.sw_ratio:.2f}")
    if metrics.sw_ratio > MOONS_MAX_RATIO:
        raise Failure(f"the samples are distributed like the moons: sliced W2 within {MOONS_MAX_RATIO}x the "
                      f"data-vs-data floor ({line})", f"{MOONS_N} samples from x_T ~ N(0, I), seed 1",
                      f"ratio <= {MOONS_MAX_RATIO}", round(metrics.sw_ratio, 3))
    return line


SIG = ("betas: float64 (T,); t: int code index 0..T-1 (t_prev may be -1: alpha_bar = 1);\n"
       "    arrays (B, D). Your chapter 3 alpha_bar and posterior_variance are imported at the top.")

EXERCISES = [
    Exercise("4.1", "ddpm_loss", "the loss of Algorithm 1 (L_simple, eq. 14)",
             _stub("ddpm_loss(eps_model, x0, t, noise, betas)", f"""
    Algorithm 1, one step: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, then
    L_simple = mean of || eps - eps_theta(x_t, t) ||^2   (DDPM eq. 14).
    eps_model(xt, t) takes xt (B, D) and t, an int array (B,), and returns eps (B, D).
    x0 and noise (= eps) are (B, D); t is an int array (B,), one code index per example.
    Return the loss as a float (the mean over every element).
    {SIG}
"""), ("alpha_bar(betas)[t][:, None] broadcasts one coefficient per row.",
       "Call eps_model(x_t, t) with the same t you used to build x_t."),
             "tinydiff/diffusion.py (training_targets) and tinydiff/losses.py (simple_loss)", grade_loss,
             teaches="what the network is trained to do"),
    Exercise("4.2", "ddpm_step", "one DDPM step (Algorithm 2), sigma^2 = beta or beta_tilde",
             _stub("ddpm_step(eps, xt, t, noise, betas, variance)", f"""
    Algorithm 2 line 4 (eq. 11):
    x_{{t-1}} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) + sigma_t z,
    with z = noise, sigma_t^2 = beta_t (variance="beta") or beta_tilde_t (variance="beta_tilde",
    eq. 7) (DDPM sec. 3.2), and no noise at the last step (code t = 0).
    eps is the model's prediction (B, D); t an int.
    {SIG}
"""), ("sigma_t is the square root of the variance.", "beta_tilde_t: your posterior_variance from 3.6."),
             "tinydiff/diffusion.py (GaussianDiffusion.p_mean_variance, p_sample_step)", grade_ddpm_step,
             teaches="ancestral sampling, and that its mean is the posterior mean"),
    Exercise("4.3", "ddim_step", "one DDIM step (eq. 12), eta = 0 and eta = 1",
             _stub("ddim_step(eps, xt, t, t_prev, betas, eta, noise)", f"""
    DDIM (arXiv 2010.02502) eq. 12 with a = alpha_bar:
    x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps + sigma z,
    x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t),
    sigma = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev)   (eq. 16).
    t_prev = -1 means a_prev = 1 (the last step lands on x_0). noise is z (None when eta = 0).
    {SIG}
"""), ("a_prev = 1.0 if t_prev == -1 else alpha_bar(betas)[t_prev].",
       "At eta = 1 and t_prev = t - 1, sigma^2 is beta_tilde_t: the step is DDPM's."),
             "tinydiff/diffusion.py (GaussianDiffusion.ddim_step)", grade_ddim_step,
             teaches="the deterministic sampler, and how eta interpolates to DDPM"),
    Exercise("4.4", "ddim_timesteps", "DDIM's timestep list",
             _stub("ddim_timesteps(T, steps)", """
    The subsequence tau of code indices 0..T-1 that DDIM walks (DDIM sec. 4.2): `steps` distinct
    ints, increasing, evenly spread, the first 0 and the last T - 1 (one step: just [T - 1]).
    Return an int array (steps,).
"""), ("np.linspace(0, T - 1, steps), rounded half up: np.floor(... + 0.5).",
       "range(0, T, T // steps) misses T - 1: sampling would not start from pure noise."),
             "tinydiff/schedules.py (ddim_timesteps)", grade_ddim_timesteps,
             teaches="where a fast sampler spends its steps"),
    Exercise("4.5", "ddim_sample", "the DDIM sampling loop (eta = 0)",
             _stub("ddim_sample(eps_model, x_T, betas, steps)", """
    Walk tau = ddim_timesteps(T, steps) backwards: x <- ddim_step(eps_model(x, tau_i), x, tau_i,
    tau_{i-1}, betas, 0.0, None) for i = steps-1 .. 0, with tau_{-1} = -1 (alpha_bar_prev = 1).
    eps_model(x, t) takes t as an int array (B,). x_T: (B, D). Return x_0 (B, D).
    Uses your 4.3 and 4.4.
"""), ("t = np.full(len(x), tau_i) for the model.", "The last step goes to t_prev = -1, not to 0."),
             "tinydiff/diffusion.py (GaussianDiffusion.sample, sampler='ddim')", grade_ddim_sample,
             teaches="a whole sampler; why its last step lands on alpha_bar = 1"),
    Exercise("4.6", "ddpm_sample", "Algorithm 2 end to end: sample the toy moons",
             _stub("ddpm_sample(eps_model, x_T, betas, rng)", """
    Algorithm 2: for t = T-1 .. 0 (code indices), z = rng.standard_normal(x.shape) if t > 0,
    x <- ddpm_step(eps_model(x, t), x, t, z, betas, "beta") (sigma_t^2 = beta_t). Return x_0.
    eps_model(x, t) takes t as an int array (B,). x_T: (B, D); rng: numpy Generator.
    The check samples the moons with the exact denoiser of a training set, and reports sliced
    W2 against fresh data as a ratio to the data-vs-data floor (1 = indistinguishable).
"""), ("Uses your 4.2; at t = 0 pass zeros (or anything: your step adds no noise there).",),
             "tinydiff/diffusion.py (GaussianDiffusion.sample, sampler='ddpm')", grade_moons, time_limit=180.0,
             teaches="that the pieces make a sampler: moons out of noise"),
]
