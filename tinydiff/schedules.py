"""Noise schedules beta_1..beta_T, and the timestep subsequences DDIM walks.

A schedule is a float64 NumPy array of length T; entry ``t`` (0-indexed) is the paper's
beta_{t+1}. Everything downstream (alpha_bar, posterior coefficients) is derived from it in
``tinydiff.diffusion``, so a schedule is the whole description of the forward process.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

SCHEDULES = ("linear", "cosine", "quadratic", "sigmoid")

# DDPM (arXiv 2006.11239, sec. 4) uses beta_1 = 1e-4 .. beta_T = 0.02 for T = 1000.
_DDPM_BETA_START = 1e-4
_DDPM_BETA_END = 0.02


def validate_betas(betas: np.ndarray, what: str = "betas") -> np.ndarray:
    """Check that ``betas`` is a non-empty 1-D array of finite values strictly inside (0, 1).

    beta = 0 would make a step the identity (the posterior variance would divide by zero) and
    beta = 1 would erase the signal in one step (alpha_bar = 0 everywhere after it).
    """
    arr = np.asarray(betas, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array; got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr > 0.0) & (arr < 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what} must lie strictly inside (0, 1); entry {i} is {float(arr[i])!r}")
    return arr


_MIN_SCALED_T = 21   # the smallest T whose scaled end 0.02 * 1000 / T is below 1


def _ddpm_range(num_timesteps: int) -> tuple[float, float]:
    # improved-diffusion's rule: keep the *total* noise comparable when T changes, so
    # beta scales like 1/T (scale = 1 exactly at T = 1000, which reproduces DDPM).
    scale = 1000 / num_timesteps
    return scale * _DDPM_BETA_START, scale * _DDPM_BETA_END


def betas_for_alpha_bar(num_timesteps: int, alpha_bar: Callable[[float], float],
                        max_beta: float = 0.999) -> np.ndarray:
    """Discretise a continuous alpha_bar(tau), tau in [0, 1], into T betas.

    beta_t = 1 - alpha_bar(t/T) / alpha_bar((t-1)/T)  (improved DDPM, arXiv 2102.09672, sec. 3.2),
    so that prod_{s<=t}(1 - beta_s) = alpha_bar(t/T) / alpha_bar(0). Betas are capped at
    ``max_beta`` because the ratio reaches 1 at tau = 1 (a singular last step).
    """
    betas = [min(1.0 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), max_beta)
             for i in range(num_timesteps)]
    return np.array(betas, dtype=np.float64)


def cosine_alpha_bar(tau: float, s: float = 0.008) -> float:
    """f(tau) = cos^2(((tau + s) / (1 + s)) * pi / 2)  (improved DDPM eq. 17, before dividing by f(0))."""
    return math.cos((tau + s) / (1.0 + s) * math.pi / 2) ** 2


def make_beta_schedule(name: str, num_timesteps: int) -> np.ndarray:
    """The betas of a named schedule, as a float64 array of shape (T,).

    - ``"linear"``: DDPM's linspace(1e-4, 0.02, T) for T = 1000; for other T both ends are
      multiplied by 1000/T, as improved-diffusion does.
    - ``"cosine"``: improved DDPM eq. 17, alpha_bar_t = f(t/T) / f(0) with s = 0.008, and
      betas clipped at 0.999.
    - ``"quadratic"``: betas evenly spaced in sqrt(beta), same ends as "linear".
    - ``"sigmoid"``: a sigmoid over [-6, 6] stretched between the "linear" ends.

    The scaled ends exceed 1 for T < 21 with "linear"/"quadratic"; that is a ValueError.
    """
    if not isinstance(num_timesteps, (int, np.integer)) or isinstance(num_timesteps, bool) \
            or num_timesteps < 1:
        raise ValueError(f"num_timesteps must be a positive integer; got {num_timesteps!r}")
    num_timesteps = int(num_timesteps)
    if name in ("linear", "quadratic") and num_timesteps < _MIN_SCALED_T:
        raise ValueError(f"the {name!r} schedule needs T >= {_MIN_SCALED_T} timesteps (its betas "
                         f"scale like 1000/T and leave (0, 1) below that), got T={num_timesteps}; use "
                         f"more timesteps or the 'cosine' schedule")
    if name == "linear":
        start, end = _ddpm_range(num_timesteps)
        betas = np.linspace(start, end, num_timesteps, dtype=np.float64)
    elif name == "cosine":
        betas = betas_for_alpha_bar(num_timesteps, cosine_alpha_bar)
    elif name == "quadratic":
        start, end = _ddpm_range(num_timesteps)
        betas = np.linspace(math.sqrt(start), math.sqrt(end), num_timesteps, dtype=np.float64) ** 2
    elif name == "sigmoid":
        start, end = _ddpm_range(num_timesteps)
        ramp = 1.0 / (1.0 + np.exp(-np.linspace(-6.0, 6.0, num_timesteps, dtype=np.float64)))
        betas = start + (end - start) * ramp
    else:
        raise ValueError(f"unknown beta schedule {name!r}; valid names are {', '.join(SCHEDULES)}")
    return validate_betas(betas, what=f"the {name!r} schedule with T={num_timesteps}")


SPACINGS = ("leading", "trailing", "linspace")
# DDIM's default: it starts at the last timestep T-1, as Lin et al. 2024 (arXiv 2305.08891,
# sec. 3.3) require, and ends at t = 0, the smallest sigma; it is also the list DDIM walked before
# spacings existed, so seeded DDIM samples are unchanged. (The ODE samplers default to
# "trailing", measured better for them: tinydiff.samplers.DEFAULT_ODE_SPACING.)
DEFAULT_SPACING = "linspace"


def spaced_timesteps(num_timesteps: int, steps: int, spacing: str = DEFAULT_SPACING) -> np.ndarray:
    """``steps`` timesteps out of 0..T-1, strictly decreasing (int64), named as in diffusers.

    With T = ``num_timesteps`` and n = ``steps`` (diffusers' ``DDIMScheduler.set_timesteps`` with
    ``steps_offset = 0``; Lin et al. 2024, arXiv 2305.08891, Table 2):

    - ``"linspace"``: round(linspace(0, T-1, n)), reversed: both ends, T-1 and 0, always included;
    - ``"leading"``:  (T // n) * [n-1, ..., 1, 0]: starts at (n-1) (T // n), which can be far
      below T-1 (50 of 1000 start at 980: the first step never sees pure noise);
    - ``"trailing"``: round(T - i T/n) - 1 for i = 0..n-1: starts at T-1, ends near T/n - 1.

    Rounding is NumPy's (half to even), as in diffusers, so the lists are identical for n >= 2.
    (diffusers builds "trailing" with a float ``arange``, which for some (T, n), e.g. (1000, 61),
    yields an (n+1)-th entry, -1, an invalid timestep; here that list is cut to its n entries.)
    One step is [T-1] whatever the spacing: a single step must start from pure noise.
    """
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; valid ones are {', '.join(SPACINGS)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) \
            or not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be an integer in 1..{num_timesteps} (T); got {steps!r}")
    T, n = int(num_timesteps), int(steps)
    if n == 1:
        return np.array([T - 1], dtype=np.int64)
    if spacing == "linspace":
        seq = np.linspace(0, T - 1, n).round()[::-1]
    elif spacing == "leading":
        seq = (np.arange(n) * (T // n))[::-1]
    else:  # trailing: diffusers' float arange, cut to its first n entries (see above)
        seq = np.round(np.arange(T, 0, -T / n)[:n]) - 1
    return np.ascontiguousarray(seq).astype(np.int64)


def ddim_timesteps(num_timesteps: int, steps: int, spacing: str = DEFAULT_SPACING) -> np.ndarray:
    """``spaced_timesteps`` in increasing order, as ``GaussianDiffusion.sample(sampler="ddim")``
    stores its subsequence tau of 1..T (DDIM, arXiv 2010.02502, sec. 4.2).

    The sampler steps from tau[i] to tau[i-1], and from tau[0] to "-1" (alpha_bar = 1). With the
    default "linspace" spacing the chain always starts at T-1 (pure noise) and ends at 0.
    """
    return spaced_timesteps(num_timesteps, steps, spacing)[::-1].copy()
