"""Drawing samples from a trained model: EMA weights in, arrays (and images/s) out.

``GaussianDiffusion.sample`` runs the reverse chain on plain arrays with any
``model_fn(x_t, t) -> prediction``. This module makes that function from an autograd model:

- ``model_fn_for(model, labels, guidance)`` wraps the model (Tensors in, arrays out) and, for a
  class-conditional model, applies classifier-free guidance (Ho & Salimans 2022, eq. 6):

      eps_guided = eps(x_t, t) + s * (eps(x_t, t, y) - eps(x_t, t))

  with guidance scale s: s = 1 is the plain conditional model, s = 0 the unconditional one,
  s > 1 trades diversity for fidelity to the label. (The paper writes (1 + w) eps_c - w eps_u,
  i.e. w = s - 1.) Both predictions come from one forward pass on a doubled batch.
- ``generate(...)`` samples ``n`` points or images in batches, under ``no_grad``, with the model
  in eval mode, on the CPU (NumPy) or a GPU (CuPy, noise drawn on the device), and times it.

A checkpoint's model with its EMA weights comes from ``tinydiff.run.load_run``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from autograd.backend import cuda_available, cuda_unavailable_reason, get_array_module, to_device, to_numpy
from autograd.tensor import Tensor, no_grad
from tinydiff.diffusion import GaussianDiffusion

Array = Any  # numpy.ndarray or cupy.ndarray


class NonFiniteSamples(FloatingPointError):
    """Sampling produced NaN or inf; never handed on as if they were samples."""


def check_count(op: str, minimum: dict[str, int], **values: Any) -> None:
    """Each of ``values`` is an int (not a float such as 2.5, nor a bool) >= its minimum."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{op}: {name} must be an integer, got {value!r}")
        if value < minimum[name]:
            raise ValueError(f"{op}: {name} must be >= {minimum[name]}, got {value}")
ModelFn = Callable[[Array, Array], Array]


def model_fn_for(model: Any, labels: Array | None = None, guidance: float = 1.0) -> ModelFn:
    """``model_fn(x_t, t) -> prediction`` on raw arrays, for ``GaussianDiffusion.sample``.

    ``labels`` (B,) conditions a class-conditional model (None: the null label, i.e. the
    unconditional model); ``guidance`` is the classifier-free guidance scale s (see the module
    docstring), which needs labels and a model trained with label dropout. Call it under
    ``no_grad`` (``generate`` does).
    """
    if guidance != 1.0:
        if labels is None:
            raise ValueError("classifier-free guidance (guidance != 1) needs labels to guide towards")
        if getattr(model, "num_classes", None) is None:
            raise ValueError("classifier-free guidance needs a class-conditional model "
                             "(this one was built without num_classes)")

    def plain(xt: Array, t: Array) -> Array:
        return model(Tensor(xt), t, labels).data

    if guidance == 1.0:
        return plain
    null = model.num_classes

    def guided(xt: Array, t: Array) -> Array:
        xp = get_array_module(xt)
        y = xp.asarray(labels)
        both = model(Tensor(xp.concatenate([xt, xt])), xp.concatenate([t, t]),
                     xp.concatenate([y, xp.full_like(y, null)])).data
        cond, uncond = both[: len(xt)], both[len(xt):]
        return uncond + guidance * (cond - uncond)

    return guided


class SampleResult(NamedTuple):
    samples: np.ndarray     # (n, *shape) float32 on the host
    labels: np.ndarray | None
    seconds: float          # wall time of the sampling (model evaluations and transfers)
    per_second: float       # samples (points or images) per second


def _labels_array(labels: int | Sequence[int] | Array | None, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    arr = np.asarray(to_numpy(labels) if hasattr(labels, "shape") else labels, dtype=np.int64)
    if arr.ndim == 0:
        return np.full(n, int(arr), dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"labels must be one int or one label per sample ({n},); got shape {arr.shape}")
    return arr


def _generator(seed: int, device: str) -> Any:
    """The sampling noise source: a NumPy Generator, or a CuPy one so noise is drawn on the GPU."""
    if device == "cpu":
        return np.random.default_rng(seed)
    if device == "cuda":
        if not cuda_available():
            raise RuntimeError(f"device 'cuda' requested but {cuda_unavailable_reason()}")
        import cupy
        return cupy.random.default_rng(seed)
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def generate(model: Any, diffusion: GaussianDiffusion, n: int, shape: Sequence[int], *,
             sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0,
             labels: int | Sequence[int] | Array | None = None, guidance: float = 1.0,
             batch_size: int = 1000, seed: int = 0, device: str = "cpu",
             parameterization: str = "eps", clip_x0: bool = False, dtype: Any = np.float32,
             progress: bool = False, spacing: str | None = None,
             sigmas: str | None = None, check_finite: bool = True) -> SampleResult:
    """Draw ``n`` samples of ``shape`` (e.g. (2,) or (1, 28, 28)) from ``model``.

    ``sampler``: "ddpm" (ancestral, all T steps), "ddim" (``steps`` steps, stochasticity
    ``eta``), or an ODE sampler "euler", "heun", "dpmpp_2m" (``tinydiff.samplers``); ``spacing``
    picks the timesteps of ddim and the ODE samplers, ``sigmas="karras"`` Karras' noise levels.
    ``labels``: one int or one per sample, for a class-conditional model;
    ``guidance``: classifier-free guidance scale. Samples are drawn ``batch_size`` at a time,
    with a generator seeded by ``seed`` on ``device`` (the model must already live there).
    Pass the EMA weights (``EMA.swapped_into`` or ``load_run``); the model is put in eval mode.
    Raises ``NonFiniteSamples`` if any sample holds NaN or inf (``check_finite=False`` returns them).
    """
    check_count("generate", n=n, batch_size=batch_size, minimum={"n": 0, "batch_size": 1})
    if not math.isfinite(guidance):
        raise ValueError(f"generate: guidance must be a finite scale, got {guidance}")
    shape = tuple(int(s) for s in shape)
    label_arr = _labels_array(labels, n)
    rng = _generator(seed, device)
    model.eval()
    outputs: list[np.ndarray] = []
    start = time.perf_counter()
    with no_grad():
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            y = None if label_arr is None else to_device(label_arr[lo:hi], device)
            fn = model_fn_for(model, y, guidance)
            x = diffusion.sample(fn, (hi - lo,) + shape, sampler=sampler, steps=steps, eta=eta,
                                 rng=rng, clip_x0=clip_x0, dtype=dtype,
                                 parameterization=parameterization, progress=progress,
                                 spacing=spacing, sigmas=sigmas)
            outputs.append(to_numpy(x))  # the copy to the host also waits for the GPU
    seconds = time.perf_counter() - start
    samples = np.concatenate(outputs) if outputs else np.zeros((0,) + shape, dtype=dtype)
    if check_finite and not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).reshape(len(samples), -1).any(axis=1).sum())
        raise NonFiniteSamples(f"{bad} of {n} samples hold NaN or inf: the model's predictions "
                               f"are not finite (diverged weights?) or an option is extreme")
    return SampleResult(samples, label_arr, seconds, n / seconds if seconds > 0 else float("inf"))
