"""Turning a timestep (and a class label) into something a network can read.

A denoiser is one network shared by every noise level, so it must be told which level it is
looking at. The sinusoidal embedding of the Transformer (Vaswani et al. 2017), used by DDPM and
improved-diffusion, maps an integer t to ``dim`` smooth features of many frequencies:

    emb(t) = [cos(t w_0), ..., cos(t w_{h-1}), sin(t w_0), ..., sin(t w_{h-1})],
    w_k = max_period^(-k / h),   h = dim // 2,

from one turn per step (w_0 = 1) down to one turn per ``2 pi max_period`` steps; nearby
timesteps get nearby embeddings and every t in [0, max_period) a distinct one.
"""
from __future__ import annotations

import math
from typing import Any

from autograd.backend import get_array_module, to_device
from autograd.tensor import Tensor


def timestep_embedding(t: Any, dim: int, max_period: float = 10000.0, dtype: Any = None) -> Tensor:
    """Sinusoidal embedding of timesteps: a constant Tensor of shape (B, dim).

    ``t`` is an array (NumPy or CuPy) or Tensor of shape (B,), integer or fractional; the result
    lives on t's device, as float32 unless ``dtype`` says otherwise. An odd ``dim`` gets a
    trailing zero column. The angles are formed in ``dtype``, as improved-diffusion does: in
    float32 an angle t w near 1000 carries an absolute error of ~1e-4 rad, far below the spacing
    of neighbouring timesteps' angles, and float64 would double the cost of an MLP's step.
    """
    if dim < 1:
        raise ValueError(f"timestep_embedding: dim must be >= 1, got {dim}")
    t = t.data if isinstance(t, Tensor) else t
    xp = get_array_module(t)
    t = xp.asarray(t)
    if t.ndim != 1:
        raise ValueError(f"timestep_embedding: t must have shape (B,), got shape {t.shape}")
    dtype = xp.float32 if dtype is None else dtype
    half = dim // 2
    freqs = xp.exp(-math.log(max_period) * xp.arange(half, dtype=xp.float64) / half).astype(dtype)
    angles = t.astype(dtype)[:, None] * freqs[None, :]
    parts = [xp.cos(angles), xp.sin(angles)]
    if dim % 2:
        parts.append(xp.zeros((t.shape[0], 1), dtype=dtype))
    return Tensor(xp.concatenate(parts, axis=1))


def as_index_array(v: Any, batch: int, like: Any, what: str) -> Any:
    """``v`` (int, list, NumPy/CuPy array or Tensor) as an array of shape (batch,) on the
    device of array ``like``: how models accept timesteps and labels from any caller."""
    xp = get_array_module(like)
    v = v.data if isinstance(v, Tensor) else v
    if get_array_module(v) is xp or not hasattr(v, "shape"):
        v = xp.asarray(v)
    else:  # a host array for a device model (the sampler's timesteps, say): move it over
        v = to_device(v, "cuda" if xp.__name__ == "cupy" else "cpu")
    if v.ndim == 0:
        v = xp.full((batch,), v.item(), dtype=v.dtype)
    if v.shape != (batch,):
        raise ValueError(f"{what} must be a scalar or have shape ({batch},) to match the batch, "
                         f"got shape {v.shape}")
    return v


def class_labels(y: Any, batch: int, like: Any, num_classes: int | None, who: str) -> Any:
    """Integer labels of shape (batch,) for a model with ``num_classes`` classes, or None for an
    unconditional model. ``y=None`` means the null label ``num_classes`` for every sample (the
    "no label" of classifier-free guidance); a label may be 0..num_classes."""
    if num_classes is None:
        if y is not None:
            raise ValueError(f"{who}: got labels y, but the model was built without num_classes")
        return None
    xp = get_array_module(like)
    if y is None:
        return xp.full((batch,), num_classes, dtype=xp.int64)
    labels = as_index_array(y, batch, like, "y")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{who}: labels y must be integers, got dtype {labels.dtype}")
    # Checked on the host only: on a GPU the check would stall every step on a device->host copy.
    if xp.__name__ == "numpy" and batch and (int(labels.min()) < 0 or int(labels.max()) > num_classes):
        raise ValueError(f"{who}: labels must lie in 0..{num_classes} ({num_classes} = no label), "
                         f"got range {int(labels.min())}..{int(labels.max())}")
    return labels
