"""Exponential moving average (EMA) of a model's weights, the weights diffusion models sample with.

After every optimizer step each shadow weight moves a little towards the live one:

    theta_ema <- d * theta_ema + (1 - d) * theta          (DDPM, sec. 4 and App. B: d = 0.9999)

Averaging over the last ~1/(1 - d) steps smooths out the noise of the last SGD steps; samples
from the EMA weights are markedly better than from the raw ones. With ``warmup`` the decay used
at update number n (counting from 0) is

    d_n = min(d, (1 + n) / (10 + n))

(as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``), so a short run is not
dominated by the random initial weights: d_0 = 0.1, d_90 = 0.91, and d is reached after
(10 d - 1) / (1 - d) updates (about 9000 for d = 0.999).

The shadow weights are plain arrays (NumPy or CuPy, on the device of the live weights), never
Tensors: updating them records nothing in the autograd graph, and happens in place with one
preallocated scratch buffer, so an update allocates no memory.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from autograd.backend import get_array_module, to_device
from autograd.tensor import Tensor

Array = Any  # numpy.ndarray or cupy.ndarray


def _named_parameters(source: Any) -> dict[str, Tensor]:
    """Name -> parameter, from a Module (``named_parameters()``) or a mapping/iterable of pairs."""
    if hasattr(source, "named_parameters"):
        return dict(source.named_parameters())
    return dict(source.items() if isinstance(source, Mapping) else source)


class EMA:
    """Shadow copies of a model's parameters, averaged over training steps.

    ``EMA(model, decay=0.999, warmup=True)``; call ``update()`` after each optimizer step.
    ``shadow`` maps parameter names (those of ``model.named_parameters()``) to arrays, so
    ``model.load_state_dict({**model.state_dict(), **ema.shadow})`` loads the averaged weights;
    ``swapped_into(model)`` does that temporarily and without copying.
    """

    def __init__(self, model: Any, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1); got {decay!r}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self._params = _named_parameters(model)
        if not self._params:
            raise ValueError("EMA: the model has no parameters")
        self.shadow: dict[str, Array] = {name: p.data.copy() for name, p in self._params.items()}
        self._scratch = self._new_scratch()

    def _new_scratch(self) -> Array:
        """One flat buffer as large as the largest parameter; each update borrows a view of it."""
        largest = max(self.shadow.values(), key=lambda a: a.size)
        return get_array_module(largest).empty(largest.size, dtype=largest.dtype)

    def current_decay(self) -> float:
        """The decay the next ``update()`` will use: d, or min(d, (1 + n) / (10 + n)) with warmup."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    def update(self) -> None:
        """theta_ema <- d theta_ema + (1 - d) theta for every parameter, in place."""
        d = self.current_decay()
        for name, p in self._params.items():
            s = self.shadow[name]
            xp = get_array_module(s)
            tmp = self._scratch[: s.size].reshape(s.shape) if s.dtype == self._scratch.dtype \
                else xp.empty_like(s)
            xp.multiply(p.data, 1.0 - d, out=tmp)
            s *= d
            s += tmp
        self.num_updates += 1

    def copy_to(self, model: Any) -> None:
        """Overwrite ``model``'s parameters with copies of the shadow weights."""
        params = _named_parameters(model)
        self._check_names(params, "copy_to")
        for name, p in params.items():
            p.data = self.shadow[name].copy()

    @contextmanager
    def swapped_into(self, model: Any | None = None) -> Iterator[None]:
        """Within the block ``model`` (default: the tracked one) holds the EMA weights.

        The arrays are swapped, not copied, and swapped back on exit (also on an exception);
        use it to sample or evaluate with the averaged weights mid-training.
        """
        params = self._params if model is None else _named_parameters(model)
        self._check_names(params, "swapped_into")
        self._swap(params)
        try:
            yield
        finally:
            self._swap(params)

    def _swap(self, params: dict[str, Tensor]) -> None:
        for name, p in params.items():
            p.data, self.shadow[name] = self.shadow[name], p.data

    def _check_names(self, params: Mapping[str, Tensor], method: str) -> None:
        if params.keys() != self.shadow.keys():
            missing = sorted(self.shadow.keys() - params.keys())
            extra = sorted(params.keys() - self.shadow.keys())
            raise KeyError(f"EMA.{method}: parameter names differ; missing from the model: {missing}, "
                           f"not in the EMA: {extra}")

    # ------------------------------------------------------------------ (de)serialisation

    def state_dict(self) -> dict[str, Any]:
        """{"decay", "warmup", "num_updates", "shadow": {name: array}} (the arrays, not copies)."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": dict(self.shadow)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``; arrays are copied onto the device of the live parameters."""
        shadow = state["shadow"]
        self._check_names(shadow, "load_state_dict")
        for name, p in self._params.items():
            arr = shadow[name]
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(f"EMA.load_state_dict: {name!r} has shape {tuple(arr.shape)} in the "
                                 f"state but {tuple(p.shape)} in the model")
            arr = to_device(arr, p.device).astype(p.dtype, copy=True)
            self.shadow[name] = arr
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        self._scratch = self._new_scratch()

    @property
    def parameters(self) -> Iterable[tuple[str, Tensor]]:
        """The (name, live parameter) pairs being tracked."""
        return self._params.items()
