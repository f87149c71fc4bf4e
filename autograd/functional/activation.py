"""Activations: silu and gelu as whole ops, plus relu/sigmoid/tanh as functions.

Read ``activation_reference.py`` first: silu as on paper, s = 1/(1 + exp(-x)), y = x s,
dy/dx = s + x s (1 - s). This module computes the same numbers fast.

Each forward keeps the one array its derivative needs (the logistic s for silu, the normal
cdf for gelu) and works in place on the buffers it owns: on the CPU every extra live
temporary the size of an activation map costs as much as the arithmetic itself.
"""
from __future__ import annotations

import math
from typing import Any

from autograd.backend import get_array_module
from autograd.functional.special import erf
from autograd.ops import _blocks
from autograd.ops._blocks import row_blocks, run_blocks
from autograd.tensor import Tensor, make_node

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_C = math.sqrt(2.0 / math.pi)  # constants of the tanh approximation of gelu
_TANH_K = 0.044715
# Below this size an activation runs whole on the calling thread: sharing it out costs more.
# A quarter of the single-pass threshold, because silu makes four or five passes per call
# (measured: benchmarks/results/autograd-measurements.md#threads-when-sharing-work-out-pays).
_SPLIT_BYTES = _blocks.SPLIT_BYTES // 4


def relu(input: Tensor) -> Tensor:
    """y = max(x, 0).    dy/dx = 1 if x > 0 else 0."""
    return input.relu()


def sigmoid(input: Tensor) -> Tensor:
    """y = 1 / (1 + exp(-x)).    dy/dx = y (1 - y)."""
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    """y = tanh(x).    dy/dx = 1 - y^2."""
    return input.tanh()


def silu(input: Tensor) -> Tensor:
    """y = x s(x), s the logistic sigmoid.    dy/dx = s + x s (1 - s) = s + y (1 - s).

    Computed as y = h (1 + tanh h) with h = x/2 (so s = (1 + tanh h)/2): five in-place passes
    into two buffers, rows shared among the engine's threads (see autograd/ops/_blocks.py).
    """
    xp, x = input.xp, input.data
    s, y = xp.empty_like(x), xp.empty_like(x)
    blocks = row_blocks(xp, x, _SPLIT_BYTES)

    def forward_rows(run: list[Any]) -> None:
        for r in run:
            silu_rows(xp, x[r], y[r], s[r])
    run_blocks(forward_rows, blocks)

    def backward(g):
        # y is this node's own output, alive as long as the graph is, so reusing it is free.
        gx = xp.empty_like(s)  # (not x: the closure would keep the input alive for nothing)

        def backward_rows(run: list[Any]) -> None:
            for r in run:
                silu_grad_rows(xp, g[r], y[r], s[r], out=gx[r])
        run_blocks(backward_rows, blocks)
        return (gx,)
    return make_node(y, (input,), backward, "silu")


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """y = x Phi(x), Phi the standard normal cdf.    dy/dx = Phi(x) + x phi(x), phi = Phi' the pdf.

    ``approximate="tanh"``: y = x (1 + t)/2, t = tanh(c (x + k x^3)), c = sqrt(2/pi), k = 0.044715;
    dy/dx = (1 + t)/2 + x (1 - t^2) c (1 + 3 k x^2) / 2.
    """
    if approximate == "none":
        return _gelu_erf(input)
    if approximate == "tanh":
        return _gelu_tanh(input)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def logistic(z: Any, out: Any = None) -> Any:
    """Array-level s = 1 / (1 + exp(-z)) = (1 + tanh(z/2)) / 2, written into ``out`` (may be ``z``).

    The tanh form never overflows (exp(-z) does for z < -88 in float32) and runs as four
    in-place passes over one buffer, faster on the CPU than scipy's expit.
    """
    xp = get_array_module(z)
    out = xp.multiply(z, 0.5, out=xp.empty_like(z) if out is None else out)  # an array even for 0-d z
    xp.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def silu_rows(xp: Any, z: Any, y: Any, s: Any) -> None:
    """Array-level y = z s(z) and s = s(z), written into ``y`` (which may be ``z``) and ``s``:
    y = h (1 + tanh h) with h = z/2, five passes over rows that stay in cache."""
    xp.multiply(z, 0.5, out=y)  # h
    silu_of_half(xp, y, s)


def silu_of_half(xp: Any, h: Any, s: Any, keep_s: bool = True) -> None:
    """In place, ``h`` = z/2 on entry and z s(z) = h (1 + tanh h) on exit; ``s`` gets s(z), or,
    with ``keep_s=False``, is only scratch (one pass fewer: it is left holding 2 s(z))."""
    xp.tanh(h, out=s)
    s += 1                      # 1 + tanh h = 2 s
    h *= s                      # h (1 + tanh h) = z s
    if keep_s:
        s *= 0.5


def silu_grad_rows(xp: Any, g: Any, y: Any, s: Any, out: Any) -> None:
    """Array-level dL/dz = g (s + y (1 - s)) from silu's output y and logistic s, into ``out``."""
    xp.subtract(1, s, out=out)
    out *= y
    out += s
    out *= g


def _gelu_erf(input: Tensor) -> Tensor:
    xp, x = input.xp, input.data
    cdf = erf(x * _SQRT_HALF)
    cdf += 1
    cdf *= 0.5                                   # Phi(x)
    y = x * cdf

    def backward(g):
        gx = xp.exp(x * x * -0.5) * _INV_SQRT_2PI   # phi(x)
        gx *= x
        gx += cdf
        gx *= g
        return (gx,)
    return make_node(y, (input,), backward, "gelu")


def _gelu_tanh(input: Tensor) -> Tensor:
    xp, x = input.xp, input.data
    t = xp.tanh(_TANH_C * (x + _TANH_K * x ** 3))
    y = 0.5 * x * (1 + t)

    def backward(g):
        du_dx = _TANH_C * (1 + 3 * _TANH_K * x * x)
        gx = 0.5 * (1 + t + x * (1 - t * t) * du_dx)
        gx *= g
        return (gx,)
    return make_node(y, (input,), backward, "gelu")
