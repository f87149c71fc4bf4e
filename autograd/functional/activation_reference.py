"""SiLU as a learner writes it on paper, forward and backward: the version to read before
``activation.py``.

    s = 1 / (1 + exp(-x)),   y = x s,   dy/dx = s + x s (1 - s)   (since ds/dx = s (1 - s)).

``activation.silu`` computes the same numbers as y = h (1 + tanh h), h = x/2, in fewer
passes over rows shared among threads; tests/test_references.py checks that the two agree.
The array-level ``silu_forward`` and ``silu_backward`` are reused by the references of the
fused ops (linear_silu, group_norm_silu).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from autograd.backend import get_array_module
from autograd.tensor import Tensor, make_node


def silu_reference(input: Tensor) -> Tensor:
    """y = x s(x), s = 1 / (1 + exp(-x)).    dy/dx = s + x s (1 - s)."""
    x = input.data
    y, s = silu_forward(x)
    return make_node(y, (input,), lambda g: (silu_backward(g, x, s),), "silu_reference")


def silu_forward(x: Any) -> tuple[Any, Any]:
    """(y, s) = (x s(x), s(x)) for an array x."""
    xp = get_array_module(x)
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88 (float32): s = 0, rightly
        s = 1 / (1 + xp.exp(-x))
    return x * s, s


def silu_backward(g: Any, x: Any, s: Any) -> Any:
    """dL/dx = g (s + x s (1 - s)) from the input x and its logistic s."""
    return g * (s + x * s * (1 - s))
