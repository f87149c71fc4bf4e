"""The probability-flow ODE samplers (euler, heun, dpmpp_2m) against independent derivations:

- order of accuracy on an exact model: for Gaussian data N(mu, s^2) the ODE's solution is closed
  form, and each method's error falls with the number of steps at its order;
- euler is DDIM (eta = 0) step by step; DPM-Solver++(2M) equals Lu et al.'s Algorithm 2 written in
  the original (VP) coordinates, and DDIM where it is first order;
- model calls, timestep dtypes, sigma lists, the last step, the three parameterizations;
- on the CuPy stand-in of tests/test_backend_guard.py, in float32 and float64.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from autograd.backend import get_array_module
from test_backend_guard import DeviceArray, fake_cupy  # noqa: F401  (fixture)
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.samplers import (ODE_SAMPLERS, get_sigmas, get_sigmas_exponential, get_sigmas_karras,
                               model_evaluations, sigma_to_t, sigmas_from_alphas_cumprod)
from tinydiff.schedules import SPACINGS, make_beta_schedule, spaced_timesteps

T = 1000
D_LIN = GaussianDiffusion(make_beta_schedule("linear", T))
DETERMINISTIC = tuple(s for s in ODE_SAMPLERS if s != "euler_ancestral")
MU, S = 0.5, 0.3


# --------------------------------------------------------------------------- exact models

def alpha_bar_at(d: GaussianDiffusion, t):
    """alpha_bar at a (fractional) t: log sigma interpolated linearly in t, written out here."""
    a = d.alphas_cumprod
    log_sigma = np.interp(np.asarray(t, dtype=np.float64), np.arange(len(a)), 0.5 * np.log((1 - a) / a))
    return 1.0 / (1.0 + np.exp(2 * log_sigma))


def gaussian_model(d: GaussianDiffusion, mu: float, s: float, parameterization: str = "eps"):
    """The optimal prediction for data N(mu, s^2) by Bayes' rule in x_t coordinates:
    x_t = sqrt(a) x_0 + sqrt(1 - a) eps, so E[x_0 | x_t] = mu + sqrt(a) s^2 (x_t - sqrt(a) mu) /
    (a s^2 + 1 - a)."""
    def model(xt, t):
        xp = get_array_module(xt)
        a = alpha_bar_at(d, np.asarray(t if xp is np else t.view(np.ndarray)))
        a = xp.asarray(a.reshape((-1,) + (1,) * (xt.ndim - 1)).astype(xt.dtype))
        x0 = mu + xp.sqrt(a) * s * s * (xt - xp.sqrt(a) * mu) / (a * s * s + 1 - a)
        eps = (xt - xp.sqrt(a) * x0) / xp.sqrt(1 - a)
        return {"eps": eps, "x0": x0, "v": xp.sqrt(a) * eps - xp.sqrt(1 - a) * x0}[parameterization]
    return model


def wiggly_model(xt, t):
    """A nonlinear eps model with an explicit t dependence (no closed-form sampler output)."""
    xp = get_array_module(xt)
    tt = (t.astype(xt.dtype) / T).reshape((-1,) + (1,) * (xt.ndim - 1))
    return 0.8 * xp.tanh(1.5 * xt + tt) + 0.3 * xp.sin(3 * tt) * xt


def exact_solution(x_T, mu, s, sigma_max, sigma_min):
    """Closed form: x_bar(sigma) - mu = (x_bar(sigma_max) - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 +
    sigma_max^2). Every method's last step, to sigma = 0, is the same Euler step x_0 = D(x, sigma_min)
    (its error does not shrink with N), so the reference applies that step to the exact x(sigma_min)."""
    x_bar_max = x_T * math.sqrt(1 + sigma_max ** 2)
    x_min = mu + (x_bar_max - mu) * math.sqrt(s * s + sigma_min ** 2) / math.sqrt(s * s + sigma_max ** 2)
    x0 = mu + (x_bar_max - mu) * s / math.sqrt(s * s + sigma_max ** 2)
    return mu + s * s / (s * s + sigma_min ** 2) * (x_min - mu), x0


# --------------------------------------------------------------------------- order of accuracy

@pytest.mark.parametrize("sampler, order", [("euler", 1), ("heun", 2), ("dpmpp_2m", 2)])
@pytest.mark.parametrize("sigmas", ["karras", "exponential", None])
def test_order_of_accuracy_on_gaussian_data(sampler, order, sigmas):
    x_T = np.random.default_rng(0).standard_normal((64, 1))
    grid = sigmas_from_alphas_cumprod(D_LIN.alphas_cumprod)
    ref, x0 = exact_solution(x_T, MU, S, grid[-1], grid[0])
    assert np.abs(ref - x0).max() < (grid[0] / S) ** 2 * np.abs(x0 - MU).max()  # the floor is tiny
    # Below ~16 Karras steps the errors are pre-asymptotic (dpmpp_2m's changes sign at 8); evenly
    # spaced timesteps make big log-sigma steps near the data, so they need more steps to get there.
    steps = [16, 32, 64, 128] if sigmas else [64, 128, 256, 512]
    errors = []
    for n in steps:
        # linspace: the grid ends at sigma_min = sigma(0), where the reference takes its last step
        out = D_LIN.sample(gaussian_model(D_LIN, MU, S), x_T.shape, sampler=sampler, steps=n,
                           sigmas=sigmas, spacing=None if sigmas else "linspace", x_T=x_T)
        errors.append(np.abs(out - ref).max())
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert order - 0.3 < slope < order + 0.5, (sampler, sigmas, errors, slope)


# --------------------------------------------------------------------------- DDIM and Lu et al.

@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [1, 2, 7, 25])
def test_euler_is_ddim_step_by_step(spacing, steps):
    x_T = np.random.default_rng(1).standard_normal((5, 3))
    _, euler = D_LIN.sample(wiggly_model, x_T.shape, sampler="euler", steps=steps, spacing=spacing,
                            x_T=x_T, return_trajectory=True)
    _, ddim = D_LIN.sample(wiggly_model, x_T.shape, sampler="ddim", steps=steps, spacing=spacing,
                           x_T=x_T, return_trajectory=True)
    assert len(euler) == len(ddim) == steps + 1
    for a, b in zip(euler, ddim):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def dpm_solver_pp_2m_vp(d: GaussianDiffusion, model, x, ts):
    """Lu et al. 2022 Alg. 2 in the original coordinates: alpha_t = sqrt(abar), sigma_t =
    sqrt(1 - abar), lambda = log(alpha / sigma), x0_i from the eps model (DDPM eq. 4 solved)."""
    lam = lambda a: 0.5 * math.log(a / (1 - a))  # noqa: E731
    abar = [float(d.alphas_cumprod[t]) for t in ts]
    traj, x0_prev, h_prev = [x], None, None
    for i, t in enumerate(ts):
        x0 = d.predict_x0_from_eps(x, int(t), model(x, np.full(len(x), t)))
        if i + 1 == len(ts):  # to t = 0: alpha = 1, sigma = 0
            x = x0
        else:
            a, a_next = abar[i], abar[i + 1]
            h = lam(a_next) - lam(a)
            D = x0 if x0_prev is None else (1 + 1 / (2 * h_prev / h)) * x0 - 1 / (2 * h_prev / h) * x0_prev
            x = math.sqrt((1 - a_next) / (1 - a)) * x - math.sqrt(a_next) * (math.exp(-h) - 1) * D
            h_prev = h
        x0_prev = x0
        traj.append(x)
    return traj


@pytest.mark.parametrize("spacing", SPACINGS)
def test_dpmpp_2m_is_lu_et_al_algorithm_2(spacing):
    x_T = np.random.default_rng(2).standard_normal((4, 3))
    _, got = D_LIN.sample(wiggly_model, x_T.shape, sampler="dpmpp_2m", steps=9, spacing=spacing,
                          x_T=x_T, return_trajectory=True)
    want = dpm_solver_pp_2m_vp(D_LIN, wiggly_model, x_T, spaced_timesteps(T, 9, spacing))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_euler_ancestral_is_ddim_with_eta_1(spacing):
    """sigma_up^2 = s'^2 (s^2 - s'^2) / s^2 in x_bar is DDIM's eq. 16 noise over sqrt(alpha_bar_prev):
    with the same generator the two chains agree step by step."""
    x_T = np.random.default_rng(10).standard_normal((5, 3))
    kw = dict(steps=9, spacing=spacing, x_T=x_T, return_trajectory=True)
    _, anc = D_LIN.sample(wiggly_model, x_T.shape, sampler="euler_ancestral", rng=np.random.default_rng(4), **kw)
    _, ddim = D_LIN.sample(wiggly_model, x_T.shape, sampler="ddim", eta=1.0, rng=np.random.default_rng(4), **kw)
    for a, b in zip(anc, ddim):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_dpmpp_2m_at_first_order_is_ddim():
    x_T = np.random.default_rng(3).standard_normal((4, 3))
    kw = dict(steps=12, spacing="linspace", x_T=x_T, return_trajectory=True)
    _, dpm = D_LIN.sample(wiggly_model, x_T.shape, sampler="dpmpp_2m", **kw)
    _, ddim = D_LIN.sample(wiggly_model, x_T.shape, sampler="ddim", **kw)
    np.testing.assert_allclose(dpm[1], ddim[1], rtol=1e-10)       # the first step is first order
    assert np.abs(dpm[2] - ddim[2]).max() > 1e-6                  # the second is not
    # data that is one point: D is constant, the 2M correction vanishes, every step is DDIM
    point = gaussian_model(D_LIN, MU, 0.0)
    _, dpm = D_LIN.sample(point, x_T.shape, sampler="dpmpp_2m", **kw)
    _, ddim = D_LIN.sample(point, x_T.shape, sampler="ddim", **kw)
    for a, b in zip(dpm, ddim):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dpm[-1], MU, atol=1e-10)


# --------------------------------------------------------------------------- the promises

class Spy:
    def __init__(self, model):
        self.model, self.ts = model, []

    def __call__(self, xt, t):
        assert t.shape == (xt.shape[0],)
        self.ts.append(t.copy())
        self.last = self.model(xt, t)
        return self.last


@pytest.mark.parametrize("sampler", ODE_SAMPLERS)
@pytest.mark.parametrize("steps", [1, 2, 10])
@pytest.mark.parametrize("sigmas", [None, "karras", "exponential"])
def test_model_calls_timesteps_and_last_step(sampler, steps, sigmas):
    spy = Spy(gaussian_model(D_LIN, MU, S, "x0"))
    x_T = np.random.default_rng(4).standard_normal((3, 2))
    out = D_LIN.sample(spy, x_T.shape, sampler=sampler, steps=steps, sigmas=sigmas, x_T=x_T,
                       parameterization="x0", rng=np.random.default_rng(0))
    assert len(spy.ts) == {"euler": steps, "heun": 2 * steps - 1, "dpmpp_2m": steps,
                           "euler_ancestral": steps, "dpmpp_3m": steps, "unipc": steps}[sampler]
    assert len(spy.ts) == model_evaluations(sampler, steps)
    assert all(t.dtype == (np.int64 if sigmas is None else np.float64) for t in spy.ts)
    np.testing.assert_allclose(out, spy.last, rtol=1e-12, atol=1e-14)  # the last step returns x_0 = D
    if sigmas is None:
        ts = spaced_timesteps(T, steps, "trailing").tolist()  # the ODE samplers' default
        # heun: the predictor's call at t_i, then the corrector's at t_{i+1} (none after the last)
        expected = ts if sampler != "heun" else ts[:1] + [t for t in ts[1:] for _ in range(2)]
        assert [int(t[0]) for t in spy.ts] == expected
    else:
        assert spy.ts[0][0] == pytest.approx(T - 1, abs=1e-9)
        assert steps == 1 or abs(spy.ts[-1][0]) < 1e-9


@pytest.mark.parametrize("spacing", SPACINGS + (None,))
@pytest.mark.parametrize("steps", [1, 3, 50, 1000])
def test_sigma_lists_decrease_to_zero(spacing, steps):
    grid = sigmas_from_alphas_cumprod(D_LIN.alphas_cumprod)
    for kind in (None, "karras", "exponential"):
        levels, fractional = get_sigmas(D_LIN.alphas_cumprod, steps, spacing if kind is None else None, kind)
        assert fractional == (kind is not None)
        assert levels.shape == (steps + 1,) and levels[-1] == 0 and np.all(np.diff(levels) < 0)
        assert levels[0] <= grid[-1] * (1 + 1e-12) and (steps == 1 or levels[-2] >= grid[0] * (1 - 1e-12))


def test_karras_sigmas_are_evenly_spaced_in_sigma_to_the_one_over_rho():
    s = get_sigmas_karras(10, 0.002, 80.0)
    assert s[0] == pytest.approx(80.0) and s[-2] == pytest.approx(0.002) and s[-1] == 0
    root = s[:-1] ** (1 / 7)
    np.testing.assert_allclose(np.diff(root), (0.002 ** (1 / 7) - 80 ** (1 / 7)) / 9, rtol=1e-10)


def test_exponential_sigmas_are_a_geometric_sequence():
    """Evenly spaced in log sigma = each sigma a constant factor below the last:
    sigma_i = sigma_max (sigma_min / sigma_max)^(i / (n - 1)), then 0."""
    for n in (2, 5, 10):
        s = get_sigmas_exponential(n, 0.01, 157.0)
        geometric = [157.0 * (0.01 / 157.0) ** (i / (n - 1)) for i in range(n)] + [0.0]
        np.testing.assert_allclose(s, geometric, rtol=1e-12)
        assert s[-1] == 0 and np.all(np.diff(s) < 0)
        np.testing.assert_allclose(s[1:-1] / s[:-2], (0.01 / 157.0) ** (1 / (n - 1)), rtol=1e-12)
    assert get_sigmas_exponential(1, 0.01, 157.0).tolist() == [157.0, 0.0]
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        get_sigmas_exponential(4, 2.0, 1.0)


def test_dpmpp_2m_on_exponential_sigmas_is_the_constant_step_recursion():
    """With h constant, r = 1 and Lu et al.'s 2M update is x_{i+1} = e^{-h} x_i + (1 - e^{-h})
    (3/2 D_i - 1/2 D_{i-1}) (2211.01095, Alg. 2 with h_{i-1} = h_i), written here in x_bar."""
    x_T = np.random.default_rng(11).standard_normal((5, 3))
    steps = 7
    out = D_LIN.sample(wiggly_model_float, x_T.shape, sampler="dpmpp_2m", steps=steps,
                       sigmas="exponential", x_T=x_T)
    grid = sigmas_from_alphas_cumprod(D_LIN.alphas_cumprod)
    log_s = np.linspace(np.log(grid[-1]), np.log(grid[0]), steps)
    h = log_s[0] - log_s[1]
    x, prev = x_T * np.sqrt(1 + np.exp(2 * log_s[0])), None
    for i, ls in enumerate(log_s):
        sig = np.exp(ls)
        t = np.interp(ls, np.log(grid), np.arange(T))  # fractional timestep, log-sigma interpolation
        D = x - sig * wiggly_model_float(x / np.sqrt(1 + sig * sig), np.full(len(x), t))
        if i == steps - 1:
            x = D
        else:
            x = np.exp(-h) * x + (1 - np.exp(-h)) * (D if prev is None else 1.5 * D - 0.5 * prev)
        prev = D
    np.testing.assert_allclose(out, x, rtol=1e-9, atol=1e-9)


def wiggly_model_float(xt, t):
    """``wiggly_model`` for fractional t."""
    return wiggly_model(xt, np.asarray(t, dtype=np.float64))


def test_sigma_to_t_interpolates_log_sigma():
    grid = sigmas_from_alphas_cumprod(D_LIN.alphas_cumprod)
    np.testing.assert_array_equal(sigma_to_t(grid, np.log(grid)), np.arange(T))
    mid = np.sqrt(grid[:-1] * grid[1:])  # geometric means lie halfway in log sigma
    np.testing.assert_allclose(sigma_to_t(mid, np.log(grid)), np.arange(T - 1) + 0.5, atol=1e-9)


@pytest.mark.parametrize("sampler", ODE_SAMPLERS)
@pytest.mark.parametrize("sigmas", [None, "karras", "exponential"])
def test_eps_x0_and_v_models_give_the_same_samples(sampler, sigmas):
    x_T = np.random.default_rng(5).standard_normal((6, 2))
    outs = [D_LIN.sample(gaussian_model(D_LIN, MU, S, p), x_T.shape, sampler=sampler, steps=6,
                         sigmas=sigmas, x_T=x_T, parameterization=p, rng=np.random.default_rng(9))
            for p in ("eps", "x0", "v")]
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(outs[2], outs[0], rtol=1e-9, atol=1e-9)


def test_clip_x0_matches_ddim_clipping():
    x_T = 3 * np.random.default_rng(6).standard_normal((5, 3))
    kw = dict(steps=8, spacing="trailing", x_T=x_T, clip_x0=True)
    np.testing.assert_allclose(D_LIN.sample(wiggly_model, x_T.shape, sampler="euler", **kw),
                               D_LIN.sample(wiggly_model, x_T.shape, sampler="ddim", **kw), rtol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sampler="euler", sigmas="polyexponential"), "karras, exponential"),
    (dict(sampler="euler", sigmas="exponential", spacing="linspace"), "no spacing"),
    (dict(sampler="heun", sigmas="karras", spacing="trailing"), "no spacing"),
    (dict(sampler="heun", spacing="uniform"), "leading, trailing, linspace"),
    (dict(sampler="dpmpp_2m", eta=0.5), "eta"),
    (dict(sampler="euler", timesteps=[0, 5]), "timesteps"),
    (dict(sampler="ddim", sigmas="karras"), "ODE sampler"),
    (dict(sampler="ddpm", steps=None, spacing="trailing"), "spacing"),
    (dict(sampler="euler", steps=0), "1..1000"),
    (dict(sampler="rk4"), "euler, heun, dpmpp_2m"),
])
def test_bad_options_are_clear_errors(kwargs, match):
    kwargs.setdefault("steps", 4)
    with pytest.raises(ValueError, match=match):
        D_LIN.sample(wiggly_model, (2, 3), x_T=np.zeros((2, 3)), **kwargs)


# --------------------------------------------------------------------------- on the device

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sampler", DETERMINISTIC)  # the stand-in has no device generator
@pytest.mark.parametrize("sigmas", [None, "karras", "exponential"])
def test_samplers_on_the_cupy_stand_in(sampler, sigmas, dtype, fake_cupy):
    x_T = np.random.default_rng(7).standard_normal((4, 3)).astype(dtype)
    host = D_LIN.sample(wiggly_model, x_T.shape, sampler=sampler, steps=5, sigmas=sigmas, x_T=x_T)
    dev, traj = D_LIN.sample(wiggly_model, x_T.shape, sampler=sampler, steps=5, sigmas=sigmas,
                             x_T=x_T.copy().view(DeviceArray), return_trajectory=True)
    assert type(dev) is DeviceArray and dev.dtype == dtype
    assert all(type(x) is DeviceArray and x.dtype == dtype for x in traj)
    assert fake_cupy.transfers == 0
    np.testing.assert_allclose(dev.view(np.ndarray), host, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sampler", ODE_SAMPLERS)
def test_samplers_keep_backend_and_dtype(xp, sampler, dtype):
    x_T = xp.asarray(np.random.default_rng(8).standard_normal((4, 3)).astype(dtype))
    out = D_LIN.sample(wiggly_model, x_T.shape, sampler=sampler, steps=5, sigmas="karras", x_T=x_T,
                       rng=xp.random.default_rng(0))
    assert get_array_module(out) is xp and out.dtype == dtype
