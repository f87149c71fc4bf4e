"""Training losses on plain arrays (DDPM Algorithm 1), independent of any autograd.

The training loop builds (x_t, target) with ``GaussianDiffusion.training_targets``, runs the model
on x_t (through the autograd, or any array function), and the loss is the per-example mean squared
error between model output and target: L_simple of DDPM eq. 14 for the "eps" target, and its
x_0 / v analogues for the other parameterizations.
"""
from __future__ import annotations

from typing import Any

Array = Any  # numpy.ndarray or cupy.ndarray


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
