"""SiLU as a learner writes it on paper, forward and backward: the version to read before
``activation.py``.

    s = 1 / (1 + exp(-x)),   y = x s,   dy/dx = s + x s (1 - s)   (since ds/dx = s (1 - s)).

(Array math goes through the array's own module, xp = NumPy or CuPy, as everywhere in the engine.)

``activation.silu`` computes the same numbers as y = h (1 + tanh h), h = x/2, in fewer
passes over rows shared among threads; tests/test_references.py checks that the two agree.
The array-level ``silu_forward`` and ``silu_backward`` are reused by the references of the
fused ops (linear_silu, group_norm_silu).
"""
from __future__ import annotations

from typing import Any

from autograd.backend import get_array_module
from autograd.tensor import Tensor, make_node


def silu_reference(input: Tensor) -> Tensor:
    """y = x s(x), s = 1 / (1 + exp(-x)).    dy/dx = s + x s (1 - s)."""
    x = input.data
    y, s = silu_forward(x)
    return make_node(y, (input,), lambda g: (silu_backward(g, x, s),), "silu_reference")


def silu_forward(x: Any) -> tuple[Any, Any]:
    """(y, s) = (x s(x), s(x)) for an array x. s = 1 / (1 + exp(-x)) for x >= 0 and the same
    number as exp(x) / (1 + exp(x)) for x < 0, so that exp never overflows (e = exp(-|x|) <= 1)."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    s = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return x * s, s


def silu_backward(g: Any, x: Any, s: Any) -> Any:
    """dL/dx = g (s + x s (1 - s)) from the input x and its logistic s."""
    return g * (s + x * s * (1 - s))
