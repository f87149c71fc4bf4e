"""The engine's default random number generators, one per backend, seeded by ``manual_seed``.

Parameter initialisation and dropout draw from here unless handed a generator, so a single
``manual_seed(s)`` makes a whole run reproducible, as ``torch.manual_seed`` does. Like grad
mode, this is deliberate global state; ``get_rng_state``/``set_rng_state`` let a checkpoint
save and restore it exactly.
"""
from __future__ import annotations

from collections.abc import Callable
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


def take_uint32(generator: Any, n: int) -> Callable[[int, int], Any]:
    """Take the next ``n`` uniform integers in [0, 2^32) from a NumPy ``generator``'s stream and
    return ``read(start, stop)``, which gives numbers start..stop-1 of them.

    The numbers are the 32-bit halves of ceil(n/2) raw 64-bit draws (``random_raw``), whatever
    order the pieces are read in. A PCG stream (PCG64, the default, or PCG64DXSM) can skip
    ahead by any number of draws, so there each ``read`` draws only its own piece, from a copy
    of the stream advanced to it: several threads can draw their pieces of one array at the
    same time and still get what one sequential draw would have given. Other bit generators
    draw all ``n`` here (Philox skips ahead too, but by its blocks of four draws).
    """
    bit_generator = generator.bit_generator
    words = -(-n // 2)
    if not isinstance(bit_generator, (numpy.random.PCG64, numpy.random.PCG64DXSM)):
        drawn = bit_generator.random_raw(words).view(numpy.uint32)
        return lambda start, stop: drawn[start:stop]
    state = bit_generator.state
    bit_generator.advance(words)  # the generator moves past all n now, as a full draw would

    def read(start: int, stop: int) -> Any:
        first = start // 2  # the 64-bit word that holds number `start`
        stream = type(bit_generator)()
        stream.state = state
        stream.advance(first)
        halves = stream.random_raw(-(-stop // 2) - first).view(numpy.uint32)
        return halves[start - 2 * first:stop - 2 * first]
    return read
