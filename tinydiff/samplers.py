"""Samplers of the probability-flow ODE: Euler, Heun, DPM-Solver++(2M, 3M), UniPC, on plain arrays.

The ODE view, written once (Karras et al. 2022, arXiv 2206.00364, sec. 2 and eqs. 3-4; Song et
al. 2021, arXiv 2011.13456, eq. 13). A discrete schedule's alpha_bar_t defines the noise level

    sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t),

and in the scaled coordinates x_bar = x_t / sqrt(alpha_bar_t) = x_t sqrt(1 + sigma^2) the forward
process is x_bar = x_0 + sigma eps: pure added noise (the "variance exploding" form). The model's
best guess of x_0 is the denoiser

    D(x_bar, sigma) = x_bar - sigma eps_theta(x_bar / sqrt(1 + sigma^2), t(sigma)),

and every deterministic DDPM-family sampler integrates one ODE from sigma_max down to 0:

    d x_bar / d sigma = (x_bar - D(x_bar, sigma)) / sigma.                  (Karras eq. 4)

Each sampler below is one short function of (denoise, x_bar, sigmas), k-diffusion style, with
``sigmas`` strictly decreasing and ending at 0. Noise levels are the schedule's own sigma_t at a
spacing of timesteps (``tinydiff.schedules.spaced_timesteps``), Karras' eq. 5 (``"karras"``), or
evenly spaced in log sigma (``"exponential"``: DPM-Solver's uniform logSNR steps; ``"few_step"``:
the same between 40 and 0.08, the best measured at 10 calls on toy 2D), or an explicit list;
between grid points the model is called at the fractional timestep found by linear interpolation
in log sigma (k-diffusion's ``sigma_to_t``), so ``model_fn`` then receives float64 t.

Depends on NumPy for the host-side sigma lists only; the arrays x may be NumPy or CuPy (the
backend follows the array, every sigma is a Python float).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autograd.backend import get_array_module
from tinydiff.schedules import spaced_timesteps

Array = Any  # numpy.ndarray or cupy.ndarray
ModelFn = Callable[[Array, Array], Array]
Denoise = Callable[[Array, float], Array]

ODE_SAMPLERS = ("euler", "heun", "dpmpp_2m", "euler_ancestral", "dpmpp_3m", "unipc")  # euler_ancestral adds noise
# The ODE samplers' default spacing. "linspace" (DDIM's default) ends at t = 0, where sigma is
# tiny (0.01 for the linear schedule): DPM-Solver++(2M)'s step into it has a step-size ratio r
# near 0 and extrapolates wildly, and Heun's big first steps are no better. "trailing" (Lin et
# al. 2024) starts at T-1 and jumps from sigma(T/S - 1) straight to 0. "exponential" sigmas help
# moons at 10 calls but hurt 8gaussians, so trailing stays
# (docs/diffusion.md#sample-quality-against-model-evaluations). At 10 calls use sigmas="few_step"
# (benchmarks/results/2026-12-02-ten-calls.md).
DEFAULT_ODE_SPACING = "trailing"
SIGMA_SCHEDULES = ("karras", "exponential", "few_step")
KARRAS_RHO = 7.0  # Karras et al. 2022, eq. 5 and Table 1
# "few_step": exponential sigmas between these ends (clipped into the schedule's range), the
# toy-2D counterparts of Karras' Table 1 sigma_max = 80, sigma_min = 0.002 for data of unit
# scale. Above ~40 the denoiser is the data mean to within 1/sigma^2, so a call there is wasted;
# below ~0.08 (the toy data's finest structure is ~0.06) the steps refine nothing the metric
# sees, while the last step to 0 from 0.34 (trailing) blurs. Picked on seeds 100-101 only
# (benchmarks/results/2026-12-02-ten-calls.md, "Why").
FEW_STEP_SIGMA_MAX, FEW_STEP_SIGMA_MIN = 40.0, 0.08


# --------------------------------------------------------------------------- noise levels

def sigmas_from_alphas_cumprod(alphas_cumprod: np.ndarray) -> np.ndarray:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), float64, strictly increasing in t."""
    a = np.asarray(alphas_cumprod, dtype=np.float64)
    return np.sqrt((1.0 - a) / a)


def sigma_to_t(sigma: float | np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """The (fractional) timestep of ``sigma``: linear interpolation of t in log sigma between the
    grid's points (k-diffusion's ``sigma_to_t``); exact integers on the grid."""
    return np.interp(np.log(sigma), log_sigmas, np.arange(len(log_sigmas), dtype=np.float64))


def t_to_sigma(t: float | np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """The inverse of ``sigma_to_t``: log sigma interpolated linearly in t."""
    return np.exp(np.interp(t, np.arange(len(log_sigmas), dtype=np.float64), log_sigmas))


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = KARRAS_RHO) -> np.ndarray:
    """Karras et al. eq. 5: sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) -
    sigma_max^(1/rho)))^rho for i = 0..n-1, then sigma_n = 0. Shape (n + 1,), float64."""
    if n < 1:
        raise ValueError(f"get_sigmas_karras: n must be >= 1; got {n}")
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"get_sigmas_karras: need 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
    ramp = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return np.append((hi + ramp * (lo - hi)) ** rho, 0.0)


def get_sigmas_exponential(n: int, sigma_min: float, sigma_max: float) -> np.ndarray:
    """n noise levels evenly spaced in log sigma from sigma_max down to sigma_min, then sigma_n = 0
    (k-diffusion's ``get_sigmas_exponential``). Since lambda = -log sigma here, these are
    DPM-Solver's time steps uniform in logSNR / lambda (Lu et al. 2022, arXiv 2206.00927,
    sec. 3.3 and 2211.01095, sec. 5): every step of DPM-Solver++ has the same h. Shape (n + 1,)."""
    if n < 1:
        raise ValueError(f"get_sigmas_exponential: n must be >= 1; got {n}")
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"get_sigmas_exponential: need 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
    return np.append(np.geomspace(sigma_max, sigma_min, n), 0.0)  # geomspace keeps both ends exact


def check_sigma_list(levels: Any, grid: np.ndarray) -> np.ndarray:
    """An explicit list of noise levels as a sampler needs it: 1-D, finite, strictly decreasing,
    ending at 0, the others within the schedule's [sigma(0), sigma(T-1)] (outside it t(sigma)
    would be clamped to the grid's ends). Returns it as float64, or raises a ValueError."""
    try:
        a = np.asarray(levels, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"sigmas: expected a name ({', '.join(SIGMA_SCHEDULES)}) or a list of "
                         f"floats; got {levels!r}") from None
    if a.ndim != 1 or len(a) < 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"sigmas: a list of noise levels needs >= 2 finite floats in one dimension; "
                         f"got shape {a.shape}")
    if a[-1] != 0 or not np.all(np.diff(a) < 0):
        raise ValueError("sigmas: the noise levels must strictly decrease and end at 0")
    lo, hi = float(grid[0]), float(grid[-1])
    if a[-2] < lo * (1 - 1e-9) or a[0] > hi * (1 + 1e-9):
        raise ValueError(f"sigmas: the nonzero noise levels must lie in the schedule's "
                         f"[sigma(0), sigma(T-1)] = [{lo:.4g}, {hi:.4g}]; got {a[-2]:.4g}..{a[0]:.4g}")
    return a


def get_sigmas(alphas_cumprod: np.ndarray, steps: int | None, spacing: str | None = None,
               sigmas: Any = None) -> tuple[np.ndarray, bool]:
    """The noise levels a sampler walks, (steps + 1,) float64 strictly decreasing to 0, and whether
    they lie between the grid's (so the model must take fractional timesteps).

    - default: sigma_t at the ``spaced_timesteps(T, steps, spacing)`` timesteps, then 0
      (``spacing`` defaults to ``DEFAULT_ODE_SPACING``, "trailing");
    - ``sigmas="karras"``: Karras eq. 5 (rho = 7) between sigma(0) and sigma(T-1), then 0;
    - ``sigmas="exponential"``: evenly spaced in log sigma between the same ends, then 0;
    - ``sigmas="few_step"``: evenly spaced in log sigma between ``FEW_STEP_SIGMA_MAX`` and
      ``FEW_STEP_SIGMA_MIN`` (each clipped into [sigma(0), sigma(T-1)]), then 0;
    - ``sigmas=[s_0, ..., s_{N-1}, 0]``: an explicit list (``check_sigma_list``), k-diffusion
      style; ``steps`` must be None or its N.
    """
    grid = sigmas_from_alphas_cumprod(alphas_cumprod)
    if sigmas is None:
        if steps is None:
            raise ValueError("get_sigmas: steps=None needs an explicit sigmas list; pass steps")
        ts = spaced_timesteps(len(grid), steps, spacing or DEFAULT_ODE_SPACING)
        return np.append(grid[ts], 0.0), False
    if not isinstance(sigmas, str):
        if spacing is not None:
            raise ValueError("an explicit sigmas list chooses its own noise levels; it takes no spacing")
        levels = check_sigma_list(sigmas, grid)
        if steps is not None and steps != len(levels) - 1:
            raise ValueError(f"sigmas: the list has {len(levels) - 1} steps but steps={steps}")
        return levels, True
    if sigmas not in SIGMA_SCHEDULES:
        raise ValueError(f"unknown sigmas {sigmas!r}; valid ones are {', '.join(SIGMA_SCHEDULES)} "
                         "(or None for the schedule's own sigmas at a spacing, or a list)")
    if spacing is not None:
        raise ValueError(f"sigmas={sigmas!r} chooses its own noise levels; it takes no spacing")
    if steps is None or not 1 <= steps <= 10 ** 6:
        raise ValueError(f"steps must be in 1..1000000; got {steps!r}")
    lo, hi = float(grid[0]), float(grid[-1])
    if sigmas == "few_step":
        lo, hi = min(max(FEW_STEP_SIGMA_MIN, lo), hi), max(min(FEW_STEP_SIGMA_MAX, hi), lo)
        if not lo < hi:
            raise ValueError(f"sigmas='few_step': the schedule's sigma range [{grid[0]:.4g}, {grid[-1]:.4g}] "
                             f"does not reach into [{FEW_STEP_SIGMA_MIN}, {FEW_STEP_SIGMA_MAX}]")
    make = get_sigmas_karras if sigmas == "karras" else get_sigmas_exponential
    return make(int(steps), lo, hi), True


# --------------------------------------------------------------------------- the denoiser

def denoised_from_model_output(output: Array, x_bar: Array, sigma: float,
                               parameterization: str = "eps") -> Array:
    """D = the x_0 estimate implied by a model output at noise level sigma, in x_bar coordinates.

    With alpha_bar = 1 / (1 + sigma^2) and x_t = x_bar sqrt(alpha_bar), the conversions of
    ``GaussianDiffusion`` (DDPM eq. 4 solved for x_0; Salimans & Ho 2022 sec. 4 for v) read
    eps: D = x_bar - sigma eps;  x0: D = x0;  v: D = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v.
    """
    if parameterization == "eps":
        return x_bar - sigma * output
    if parameterization == "x0":
        return output
    if parameterization == "v":
        return x_bar / (1.0 + sigma * sigma) - (sigma / math.sqrt(1.0 + sigma * sigma)) * output
    raise ValueError(f"unknown parameterization {parameterization!r}; valid ones are eps, x0, v")


class Denoiser:
    """D(x_bar, sigma) from ``model_fn(x_t, t)``: scales x_bar to x_t, finds t(sigma), converts.

    ``fractional``: pass t as float64 (Karras or exponential sigmas, between the grid's); otherwise sigma must be
    one of the grid's and t is its int64 timestep. ``calls`` counts the model evaluations.
    """

    def __init__(self, model_fn: ModelFn, alphas_cumprod: np.ndarray, parameterization: str = "eps",
                 clip_x0: bool = False, fractional: bool = False) -> None:
        self.model_fn, self.parameterization, self.clip_x0 = model_fn, parameterization, clip_x0
        self.fractional = fractional
        self.log_sigmas = np.log(sigmas_from_alphas_cumprod(alphas_cumprod))
        self.calls = 0

    def timestep(self, sigma: float) -> float | int:
        t = float(sigma_to_t(sigma, self.log_sigmas))
        if self.fractional:
            return t
        if t != round(t):
            raise ValueError(f"sigma {sigma!r} is not on the schedule's grid; use fractional timesteps")
        return int(round(t))

    def __call__(self, x_bar: Array, sigma: float) -> Array:
        xp = get_array_module(x_bar)
        t = self.timestep(sigma)
        t_batch = xp.full((x_bar.shape[0],), t, dtype=xp.float64 if self.fractional else xp.int64)
        output = self.model_fn(x_bar * (1.0 / math.sqrt(1.0 + sigma * sigma)), t_batch)
        self.calls += 1
        x0 = denoised_from_model_output(output, x_bar, sigma, self.parameterization)
        return xp.clip(x0, -1.0, 1.0) if self.clip_x0 else x0


# --------------------------------------------------------------------------- the samplers
# Each: (denoise, x = x_bar at sigmas[0], sigmas ending at 0) -> x_bar at sigma = 0, which is x_0.
# ``callback(i, x, denoised)`` sees x_bar at sigmas[i + 1] after step i.

Callback = Callable[[int, Array, Array], None] | None


def _steps(sigmas: Sequence[float], progress: bool, name: str) -> Any:
    n = len(sigmas) - 1
    if not progress:
        return range(n)
    from tqdm.auto import trange  # only needed for the bar
    return trange(n, desc=f"{name} sampling")


def sample_euler(denoise: Denoise, x: Array, sigmas: Sequence[float], callback: Callback = None,
                 progress: bool = False) -> Array:
    """Euler's method on d x / d sigma = (x - D) / sigma (Karras Alg. 1 without the correction of
    lines 9-11): first order, one model call per step. In these coordinates it is exactly DDIM
    with eta = 0 (DDIM eq. 13; Karras sec. 3)."""
    for i in _steps(sigmas, progress, "euler"):
        denoised = denoise(x, sigmas[i])
        d = (x - denoised) / sigmas[i]                       # Karras eq. 4: the ODE's slope
        x = x + (sigmas[i + 1] - sigmas[i]) * d
        if callback is not None:
            callback(i, x, denoised)
    return x


def sample_heun(denoise: Denoise, x: Array, sigmas: Sequence[float], callback: Callback = None,
                progress: bool = False) -> Array:
    """Heun's 2nd-order method (Karras Alg. 1): an Euler predictor, then the trapezoidal corrector
    with the slope at the predicted point (lines 9-11); the last step, to sigma = 0 where the
    slope is undefined, is plain Euler. 2N - 1 model calls for N steps."""
    for i in _steps(sigmas, progress, "heun"):
        denoised = denoise(x, sigmas[i])
        d = (x - denoised) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        x_next = x + dt * d                                  # Alg. 1 line 5 (Euler predictor)
        if sigmas[i + 1] != 0:
            d_next = (x_next - denoise(x_next, sigmas[i + 1])) / sigmas[i + 1]
            x_next = x + dt * (d + d_next) / 2               # Alg. 1 line 11 (trapezoidal rule)
        x = x_next
        if callback is not None:
            callback(i, x, denoised)
    return x


def sample_dpmpp_2m(denoise: Denoise, x: Array, sigmas: Sequence[float], callback: Callback = None,
                    progress: bool = False) -> Array:
    """DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Alg. 2), in x_bar coordinates where
    lambda = log(alpha / sigma_vp) = -log sigma and h_i = lambda_{i+1} - lambda_i:

        x_{i+1} = (sigma_{i+1} / sigma_i) x_i - (e^{-h_i} - 1) D_i',
        D_i' = (1 + 1/(2 r_i)) D_i - 1/(2 r_i) D_{i-1},  r_i = h_{i-1} / h_i,

    a multistep method: one model call per step, the previous D reused. The first step (no D_{i-1}
    yet) and the last (to sigma = 0, h infinite) use D_i' = D_i: DPM-Solver++(1), which is DDIM."""
    old_denoised = None
    for i in _steps(sigmas, progress, "dpmpp_2m"):
        denoised = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised                                     # e^{-h} = sigma_{i+1} / sigma_i = 0
        else:
            h = math.log(sigmas[i] / sigmas[i + 1])
            if old_denoised is None:
                d_prime = denoised
            else:
                r = math.log(sigmas[i - 1] / sigmas[i]) / h
                d_prime = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * d_prime
        old_denoised = denoised
        if callback is not None:
            callback(i, x, denoised)
    return x


def sample_euler_ancestral(denoise: Denoise, x: Array, sigmas: Sequence[float], noise: Callable[[], Array],
                           callback: Callback = None, progress: bool = False) -> Array:
    """Ancestral sampling as an Euler step plus fresh noise (k-diffusion's ``sample_euler_ancestral``,
    eta = 1): the step from sigma_i to sigma_{i+1} splits into a deterministic Euler step down to
    sigma_down and added noise of std sigma_up, with sigma_up^2 = sigma_{i+1}^2 (sigma_i^2 -
    sigma_{i+1}^2) / sigma_i^2 and sigma_down^2 + sigma_up^2 = sigma_{i+1}^2. In x_t coordinates this
    is DDIM with eta = 1 (DDIM eq. 16), i.e. DDPM's posterior step. ``noise()`` draws z ~ N(0, I)."""
    for i in _steps(sigmas, progress, "euler_ancestral"):
        denoised = denoise(x, sigmas[i])
        s, s_next = sigmas[i], sigmas[i + 1]
        sigma_up = math.sqrt(s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2)
        sigma_down = math.sqrt(s_next ** 2 - sigma_up ** 2)
        x = x + (sigma_down - s) * (x - denoised) / s
        if s_next > 0:
            x = x + sigma_up * noise()
        if callback is not None:
            callback(i, x, denoised)
    return x


def sample_dpmpp_3m(denoise: Denoise, x: Array, sigmas: Sequence[float], callback: Callback = None,
                    progress: bool = False) -> Array:
    """DPM-Solver++(3M) (Lu et al. 2022, arXiv 2211.01095, sec. 4 / appendix B, the multistep
    third-order solver; k-diffusion's ``sample_dpmpp_3m_sde`` with eta = 0). With lambda = -log
    sigma and h = lambda_{i+1} - lambda_i, the data-prediction ODE integrates exactly as
    x_{i+1} = e^{-h} x_i + int_0^h e^{tau - h} D(lambda_i + tau) d tau (2211.01095 eq. 9); with
    D's Taylor expansion in lambda to second order, D_i + tau D' + tau^2 D'' / 2, that is

        x_{i+1} = e^{-h} x_i + (1 - e^{-h}) D_i + h phi_2 D' - h^2 phi_3 D'',
        phi_2 = (e^{-h} - 1) / h + 1,  phi_3 = phi_2 / h - 1/2,

    with d1 ~ h D' and d2 ~ h^2 D'' from divided differences of the last three D's (r0 =
    h_{i-1} / h, r1 = h_{i-2} / h; the layout of k-diffusion's ``sample_dpmpp_3m_sde``):

        d1_0 = (D_i - D_{i-1}) / r0,  d1_1 = (D_{i-1} - D_{i-2}) / r1,
        d1 = d1_0 + (d1_0 - d1_1) r0 / (r0 + r1),  d2 = 2 (d1_0 - d1_1) / (r0 + r1).

    (Taylor-expanding D_{i-1}, D_{i-2} about lambda_i gives d1_0 - d1_1 = h^2 D'' (r0 + r1) / 2,
    hence the 2; without it the D'' term is halved and the method is second order, which the
    order test catches.)
    One model call per step: first order on the first step, second order (phi_2 d1_0) on the
    second, and the last step, to sigma = 0, returns D (DPM-Solver++(1), as in dpmpp_2m)."""
    ds: list[Array] = []               # the last two D's and step sizes, newest first
    hs: list[float] = []
    for i in _steps(sigmas, progress, "dpmpp_3m"):
        denoised = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = math.log(sigmas[i] / sigmas[i + 1])
            x = math.exp(-h) * x - math.expm1(-h) * denoised          # first order: DDIM
            phi_2 = math.expm1(-h) / h + 1
            if len(hs) == 2:
                (d_1, d_2), (h_1, h_2) = ds, hs
                r0, r1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (denoised - d_1) / r0, (d_1 - d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1))
                d2 = (d1_0 - d1_1) * (2 / (r0 + r1))                 # ~ h^2 D''
                x = x + phi_2 * d1 - (phi_2 / h - 0.5) * d2
            elif hs:
                x = x + phi_2 * ((denoised - ds[0]) * (h / hs[0]))
            hs = [h] + hs[:1]
        ds = [denoised] + ds[:1]
        if callback is not None:
            callback(i, x, denoised)
    return x


def _unipc_coefficients(rks: Sequence[float], h: float, predictor: bool) -> list[float]:
    """UniPC's rho (Zhao et al. 2023, arXiv 2302.04867, Alg. 1-2 / eq. 8 with B(h) = e^h - 1, the
    "bh2" variant, for data prediction hh = -h): solve sum_m rho_m r_m^(k-1) = k! phi_{k+1}(hh) hh /
    B(hh) for k = 1..p (the order conditions of Thm. 3.1). The predictor's 2nd order takes rho = 1/2
    (as in the paper's code); the corrector with no earlier differences takes rho = 1/2."""
    hh = -h
    b_h = math.expm1(hh)
    h_phi_k, factorial, b = math.expm1(hh) / hh - 1, 1, []
    for k in range(1, len(rks) + 1):
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    if predictor:
        if len(rks) <= 2:
            return [0.5] if len(rks) == 2 else []
        R = np.vander(np.asarray(rks[:-1]), len(rks) - 1, increasing=True).T
        return np.linalg.solve(R, np.asarray(b[:-1])).tolist()
    if len(rks) == 1:
        return [0.5]
    R = np.vander(np.asarray(rks), len(rks), increasing=True).T
    return np.linalg.solve(R, np.asarray(b)).tolist()


def sample_unipc(denoise: Denoise, x: Array, sigmas: Sequence[float], callback: Callback = None,
                 progress: bool = False, order: int = 2) -> Array:
    """UniPC (Zhao et al. 2023, arXiv 2302.04867), bh2 variant, data prediction, in x_bar with
    lambda = -log sigma: each step is the predictor UniP-p (Alg. 2: DPM-Solver++'s first-order step
    plus B(h) sum_m rho_m D1_m, D1_m = (D_{i-m} - D_i) / r_m, r_m = (lambda_{i-m} - lambda_i) / h)
    and, once the model has been called at the predicted point, the corrector UniC-p (Alg. 1, eq.
    8) redoes the same step with that new D as one more difference, lifting the order by one at
    no extra call: the D at the uncorrected point is what the next step uses. ``order`` 2 (the
    paper's default for unconditional sampling) gives third-order steps; warm-up and the last
    steps use lower orders, and the last step, to sigma = 0, returns D (as dpmpp_2m)."""
    ds: list[Array] = []               # D_i, D_{i-1}, ... (newest first)
    lams: list[float] = []             # lambda of the same points
    x_prev = None                      # the step's start, for the corrector
    p_used = 0                         # the order of the step x_prev started
    for i in _steps(sigmas, progress, "unipc"):
        denoised = denoise(x, sigmas[i])
        lam = -math.log(sigmas[i])
        if x_prev is not None:         # UniC: correct x at sigma_i with the D just computed there
            x = _unipc_step(x_prev, ds, lams, sigmas[i - 1], sigmas[i], p_used, new=denoised)
        ds, lams = [denoised] + ds[:order], [lam] + lams[:order]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            steps_left = len(sigmas) - 1 - i
            p_used = min(order, len(ds), steps_left)          # warm-up; lower order at the end
            x_prev, x = x, _unipc_step(x, ds, lams, sigmas[i], sigmas[i + 1], p_used)
        if callback is not None:
            callback(i, x, denoised)
    return x


def _unipc_step(x: Array, ds: list[Array], lams: list[float], sigma: float, sigma_next: float, p: int,
                new: Array | None = None) -> Array:
    """One UniP-p step from (x at sigma, D's newest first) to sigma_next, or, with ``new`` = D at the
    predicted point, the UniC-p step (the corrector uses ds[0] = D at sigma as the base)."""
    h = math.log(sigma / sigma_next)
    m0 = ds[0]
    rks = [(lams[m] - lams[0]) / h for m in range(1, p)] + [1.0]
    d1s = [(ds[m] - m0) * (1 / rks[m - 1]) for m in range(1, p)]
    rhos = _unipc_coefficients(rks, h, predictor=new is None)
    b_h = math.expm1(-h)
    x_next = (sigma_next / sigma) * x - b_h * m0               # DPM-Solver++(1): DDIM
    res = 0.0
    for rho, d in zip(rhos, d1s):                              # the corrector's last rho is for `new`
        res = res + rho * d
    if new is not None:
        res = res + rhos[-1] * (new - m0)
    return x_next - b_h * res


SAMPLER_FUNCTIONS: dict[str, Callable[..., Array]] = {
    "euler": sample_euler, "heun": sample_heun, "dpmpp_2m": sample_dpmpp_2m,
    "euler_ancestral": sample_euler_ancestral, "dpmpp_3m": sample_dpmpp_3m, "unipc": sample_unipc}


def model_evaluations(sampler: str, steps: int) -> int:
    """What each method promises: heun 2N - 1 model calls, every other one N (UniPC's corrector
    reuses the next step's call)."""
    return 2 * steps - 1 if sampler == "heun" else steps


def sample_ode(model_fn: ModelFn, alphas_cumprod: np.ndarray, x_T: Array, sampler: str, steps: int | None,
               spacing: str | None = None, sigmas: Any = None, parameterization: str = "eps",
               clip_x0: bool = False, progress: bool = False, return_trajectory: bool = False,
               rng: Any = None) -> Array | tuple[Array, list[Array]]:
    """Integrate the probability-flow ODE from ``x_T`` (a draw of q(x_T), as for DDPM/DDIM) with
    ``sampler``; returns x_0 (and, with ``return_trajectory``, [x_T, ..., x_0] as x_t's; for
    unipc the intermediate ones are the predictor's, before the next step's correction).
    ``rng`` (a NumPy or CuPy Generator) draws the noise of ``euler_ancestral``."""
    if sampler not in SAMPLER_FUNCTIONS:
        raise ValueError(f"unknown ODE sampler {sampler!r}; valid ones are {', '.join(ODE_SAMPLERS)}")
    if steps is None and (sigmas is None or isinstance(sigmas, str)):
        steps = len(alphas_cumprod)                          # all T, as for ddim
    grid, fractional = get_sigmas(alphas_cumprod, steps, spacing, sigmas)
    levels = [float(s) for s in grid]
    denoise = Denoiser(model_fn, alphas_cumprod, parameterization, clip_x0, fractional)
    trajectory: list[Array] = [x_T]

    def record(i: int, x_bar: Array, denoised: Array) -> None:
        trajectory.append(x_bar * (1.0 / math.sqrt(1.0 + levels[i + 1] ** 2)))

    x = x_T * math.sqrt(1.0 + levels[0] ** 2)               # x_bar = x_t / sqrt(alpha_bar)
    callback = record if return_trajectory else None
    if sampler == "euler_ancestral":
        if rng is None:
            raise ValueError("sample_ode: euler_ancestral adds noise; pass rng")
        x = sample_euler_ancestral(denoise, x, levels, lambda: rng.standard_normal(x_T.shape, dtype=x_T.dtype),
                                   callback, progress)
    else:
        x = SAMPLER_FUNCTIONS[sampler](denoise, x, levels, callback, progress)
    return (x, trajectory) if return_trajectory else x
