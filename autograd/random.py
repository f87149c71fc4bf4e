"""The engine's default random number generators, one per backend, seeded by ``manual_seed``.

Parameter initialisation and dropout draw from here unless handed a generator, so a single
``manual_seed(s)`` makes a whole run reproducible, as ``torch.manual_seed`` does. Like grad
mode, this is deliberate global state; ``get_rng_state``/``set_rng_state`` let a checkpoint
save and restore it exactly.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy

from autograd.backend import cupy

_generators: dict[str, Any] = {"numpy": numpy.random.default_rng(0)}
_seed = 0


def manual_seed(seed: int) -> None:
    """Reseed the default generators of every backend."""
    global _seed
    _seed = int(seed)
    _generators.clear()
    _generators["numpy"] = numpy.random.default_rng(_seed)


def default_generator(xp: ModuleType = numpy) -> Any:
    """The default ``Generator`` for array module ``xp`` (numpy or cupy)."""
    key = xp.__name__
    if key not in _generators:
        if key != "cupy":
            raise ValueError(f"no random generator for array module {key!r}")
        _generators[key] = cupy.random.default_rng(_seed)
    return _generators[key]


def get_rng_state() -> dict[str, Any]:
    """A picklable-free snapshot of the NumPy default generator (a dict of ints and strings)."""
    return {"seed": _seed, "numpy": _generators["numpy"].bit_generator.state}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by ``get_rng_state``."""
    manual_seed(state["seed"])
    _generators["numpy"].bit_generator.state = state["numpy"]
