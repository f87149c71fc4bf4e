"""Sampling defaults, defined once: what every command, the evaluation and the demos use unless told.

``tinydiff sample``, ``tinydiff eval``, the preview that ``tinydiff train`` draws at the end, the
sampler lab and ``demos/`` read these names; a default changed here changes everywhere.

- the sampler and its step count per use (``SAMPLE_*``, ``EVAL_*``, ``PREVIEW_STEPS``);
- ``clips_x0(task)``: clip x_0_hat to [-1, 1] for images, not for unbounded toy points;
- ``balanced_labels(n)`` and ``DEFAULT_GUIDANCE`` for class-conditional models;
- ``default_spacing(sampler)``: which timesteps a short chain visits (``tinydiff.schedules``
  for DDPM/DDIM, ``tinydiff.samplers`` for the ODE samplers, where it was measured better).
"""
from __future__ import annotations

import numpy as np

from tinydiff.run import NUM_CLASSES
from tinydiff.samplers import DEFAULT_ODE_SPACING
from tinydiff.schedules import DEFAULT_SPACING

# `tinydiff sample`: the exact ancestral chain unless a faster sampler is asked for.
SAMPLE_SAMPLER = "ddpm"
SAMPLE_STEPS = 50                          # ddim and the ODE samplers, when --steps is not given
SAMPLE_N = {"toy2d": 2000, "mnist": 64}    # also the size of the training preview
SAMPLE_GUIDANCE = 1.0                      # plain conditional model

# `tinydiff eval`: DDIM, with fewer steps for the (expensive) MNIST UNet.
EVAL_SAMPLER = "ddim"
EVAL_STEPS = {"toy2d": 100, "mnist": 20}

# The DDIM preview of `tinydiff train` (samples.png) and the demos' reverse process.
PREVIEW_SAMPLER = "ddim"
PREVIEW_STEPS = {"toy2d": 100, "mnist": 50}

DEFAULT_GUIDANCE = 2.0   # classifier-free guidance scale for class-conditional MNIST samples


def clips_x0(task: str) -> bool:
    """Whether sampling clips x_0_hat to [-1, 1] by default: for images (bounded pixels), not
    for toy 2D points (unbounded data)."""
    return task == "mnist"


def balanced_labels(n: int, num_classes: int = NUM_CLASSES["mnist"]) -> np.ndarray:
    """0, 1, ..., 9, 0, 1, ...: ``n`` labels with every class equally often (within one)."""
    return np.arange(n, dtype=np.int64) % num_classes


def default_spacing(sampler: str) -> str:
    """The timestep spacing a sampler uses when none is given."""
    return DEFAULT_SPACING if sampler in ("ddpm", "ddim") else DEFAULT_ODE_SPACING
