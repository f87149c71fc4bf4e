"""Training losses on plain arrays (DDPM Algorithm 1), independent of any autograd.

The training loop builds (x_t, target) with ``GaussianDiffusion.training_targets``, runs the model
on x_t (through the autograd, or any array function), and the loss is the per-example mean squared
error between model output and target: L_simple of DDPM eq. 14 for the "eps" target, and its
x_0 / v analogues for the other parameterizations.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or cupy.ndarray

# How Algorithm 1 draws t: "uniform" over {0, ..., T-1} (DDPM), or "lognormal" in the noise level
# (EDM's training distribution, Karras et al. 2022 sec. 5); see the two functions below.
T_SAMPLINGS = ("uniform", "lognormal")


def mean_flat(x: Array) -> Array:
    """Mean over every axis but the first (batch): shape (B, ...) -> (B,)."""
    return x.mean(axis=tuple(range(1, x.ndim)))


def simple_loss(model_output: Array, target: Array) -> Array:
    """Per-example || target - model_output ||^2 / D, shape (B,)  (DDPM eq. 14, Algorithm 1 line 5).

    Average over the batch yourself: the per-example values are what you need to weight or log
    losses by timestep.
    """
    if model_output.shape != target.shape:
        raise ValueError(f"simple_loss: model_output has shape {tuple(model_output.shape)} but "
                         f"target has shape {tuple(target.shape)}")
    return mean_flat((model_output - target) ** 2)


def sample_timesteps(rng: Any, batch_size: int, num_timesteps: int) -> Array:
    """t ~ Uniform{0, ..., T-1} (code indices; the paper's Uniform{1, ..., T}, Algorithm 1 line 3).

    ``rng`` is a NumPy or CuPy Generator; the result is an int64 array (B,) of its backend.
    """
    return rng.integers(0, num_timesteps, size=batch_size, dtype="int64")


def sample_timesteps_lognormal(rng: Any, batch_size: int, log_sigmas: np.ndarray,
                               mean: float = -1.2, std: float = 1.2) -> np.ndarray:
    """t whose noise level follows EDM's training distribution, on DDPM's grid of T steps.

    EDM (Karras et al. 2022, sec. 5, Table 1 "p_train") draws ln sigma ~ N(P_mean, P_std^2),
    P_mean = -1.2, P_std = 1.2, where x_t / sqrt(alpha_bar_t) = x_0 + sigma_t eps, i.e.
    sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t). That puts most of the training at low and
    middle noise (median sigma 0.3: t = 88 of the linear schedule), where fine detail is made,
    and little at high noise, where eps ~ x_t is easy (2% of draws at t >= 500, where uniform t
    spends half of every batch, at sigma > 3.4). sigma_t increases with t, so each draw is
    rounded up onto the grid: t is the first index with sigma_t >= sigma (T - 1 above the
    grid), hence for every k < T - 1

        P(t <= k) = Phi((ln sigma_k - mean) / std).

    ``log_sigmas`` is ln sigma_t for t = 0..T-1 (``np.log(tinydiff.samplers.
    sigmas_from_alphas_cumprod(alphas_cumprod))``, computed once by the trainer); ``rng`` is a
    NumPy Generator (the trainer's noise stream); returns int64 (B,) on the host.
    """
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(f"sample_timesteps_lognormal: expected a finite mean and std > 0, "
                         f"got mean={mean!r}, std={std!r}")
    log_sigma = mean + std * rng.standard_normal(batch_size)
    t = np.searchsorted(log_sigmas, log_sigma, side="left")
    return np.minimum(t, len(log_sigmas) - 1).astype(np.int64)
