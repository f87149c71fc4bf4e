"""What makes a checkpoint "good": finite weights, and a model whose samples are finite.

A run can blow its weights up (to 1e6, say) while the loss is still finite for a step or two;
such weights save without complaint and then sample nothing but NaN. So before a checkpoint is
written, ``check_healthy`` also runs a short deterministic DDIM chain from the raw and from the
EMA weights (a few samples, a few steps from t = T-1 down to 0) and demands finite output.
It is cheap next to training: about ``2 * PROBE_STEPS`` forward passes of ``PROBE_N`` samples.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from autograd.backend import get_array_module
from tinydiff.sampling import generate

PROBE_N = 4        # samples per probe
PROBE_STEPS = 8    # DDIM steps per probe (fewer if T is smaller)


def nonfinite_weights(arrays: dict[str, Any]) -> str | None:
    """The name of the first floating-point array holding NaN or inf, else None."""
    for name, a in arrays.items():
        xp = get_array_module(a)
        if a.dtype.kind == "f" and not bool(xp.isfinite(a).all()):
            return name
    return None


def sampling_is_finite(model: Any, diffusion: Any, shape: Sequence[int], *, parameterization: str,
                       device: str, num_classes: int | None = None) -> bool:
    """Whether a short DDIM chain from ``model``'s current weights gives finite samples.

    Its own seeded generator and eval mode (no dropout) leave every training random stream alone;
    the caller restores train mode.
    """
    labels = None if num_classes is None else [i % num_classes for i in range(PROBE_N)]
    dtype = next(iter(model.parameters())).dtype  # a float64 model samples in float64
    with np.errstate(all="ignore"):
        result = generate(model, diffusion, PROBE_N, shape, sampler="ddim",
                          steps=min(PROBE_STEPS, diffusion.num_timesteps), labels=labels, seed=0,
                          device=device, parameterization=parameterization, dtype=dtype,
                          check_finite=False)
    return bool(np.isfinite(result.samples).all())
