"""Sampling defaults, defined once: what every command, the evaluation and the demos use unless told.

``tinydiff sample``, ``tinydiff eval``, the preview that ``tinydiff train`` draws at the end, the
sampler lab and ``demos/`` read these names; a default changed here changes everywhere.

- the sampler, its step count and DDIM's eta per use and task (``SAMPLE_*``, ``EVAL_*``,
  ``PREVIEW_*``);
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

# `tinydiff sample`, per task. Toy 2D: the exact ancestral chain (the MLP is cheap). MNIST:
# DDPM's own noise (DDIM with eta = 1) over 100 of the T steps: the deterministic chain (eta = 0)
# left speckled backgrounds and too many 8s, for the same model calls (docs/recipes.md).
SAMPLE_SAMPLER = {"toy2d": "ddpm", "mnist": "ddim"}
SAMPLE_STEPS = {"toy2d": 50, "mnist": 100}   # ddim and the ODE samplers, when --steps is not given
SAMPLE_ETA = {"toy2d": 0.0, "mnist": 1.0}
SAMPLE_N = {"toy2d": 2000, "mnist": 64}      # also the size of the training preview
SAMPLE_GUIDANCE = 1.0                        # plain conditional model

# `tinydiff eval`: DDIM, with fewer steps for the (expensive) MNIST UNet and its 10,000 images.
EVAL_SAMPLER = "ddim"
EVAL_STEPS = {"toy2d": 100, "mnist": 20}
EVAL_ETA = {"toy2d": 0.0, "mnist": 1.0}

# The DDIM preview of `tinydiff train` (samples.png) and the demos' reverse process.
PREVIEW_SAMPLER = "ddim"
PREVIEW_STEPS = {"toy2d": 100, "mnist": 100}
PREVIEW_ETA = {"toy2d": 0.0, "mnist": 1.0}

# Classifier-free guidance for class-conditional MNIST samples: the 3200-step preset needs less
# than the old 3000-step one did; 2 over-sharpens it (measured: docs/training.md).
DEFAULT_GUIDANCE = 1.5


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


def default_eta(per_task: dict[str, float], task: str, sampler: str) -> float:
    """DDIM's eta for ``task`` from one of ``SAMPLE_ETA``, ``EVAL_ETA``, ``PREVIEW_ETA``; 0 for
    the other samplers, which take none (ddpm has its own noise, the ODE samplers none)."""
    return per_task[task] if sampler == "ddim" else 0.0
