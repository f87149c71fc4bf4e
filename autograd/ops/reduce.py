"""Reductions over axes: sum, mean, max, var (each with ``axis`` and ``keepdims``).

A reduction maps many inputs to one output, so its backward sends the output gradient back
to every input that contributed: ``_expand`` re-inserts the reduced axes and broadcasts.
"""
from __future__ import annotations

import builtins
from typing import Any

from autograd.backend import get_array_module
from autograd.tensor import Tensor, make_node


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative ints (None means every axis)."""
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axis:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % builtins.max(ndim, 1))
    return tuple(sorted(out))


def _expand(g: Any, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    """Broadcast a reduced gradient back to the input's ``shape``."""
    if not keepdims:
        g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))
    return get_array_module(g).broadcast_to(g, shape)


def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """y = sum_i x_i over ``axis``.          dy/dx_i = 1."""
    axes = _axes(axis, x.ndim)
    out = x.xp.asarray(x.data.sum(axis=axes, keepdims=keepdims))
    return make_node(out, (x,), lambda g: (_expand(g, x.shape, axes, keepdims),), "sum")


def mean(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """y = (1/N) sum_i x_i over ``axis``.    dy/dx_i = 1/N."""
    axes = _axes(axis, x.ndim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    out = x.xp.asarray(x.data.mean(axis=axes, keepdims=keepdims))
    return make_node(out, (x,), lambda g: (_expand(g / n, x.shape, axes, keepdims),), "mean")


def max(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """y = max_i x_i over ``axis``.          dy/dx_i = 1/k if x_i is one of k tied maxima, else 0."""
    axes = _axes(axis, x.ndim)
    out_kd = x.data.max(axis=axes, keepdims=True)
    out = x.xp.asarray(out_kd if keepdims else out_kd.reshape(
        tuple(n for i, n in enumerate(x.shape) if i not in axes)))

    def backward(g):
        mask = x.data == out_kd
        count = mask.sum(axis=axes, keepdims=True).astype(g.dtype)
        g = g if keepdims else g.reshape(out_kd.shape)
        return (mask * (g / count),)
    return make_node(out, (x,), backward, "max")


def var(x: Tensor, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """y = sum_i (x_i - m)^2 / (N - ddof) with m the mean.   dy/dx_i = 2 (x_i - m) / (N - ddof).

    (The terms through m cancel because sum_i (x_i - m) = 0.) ``ddof=0`` is the biased
    estimate used by normalisation layers; torch.var defaults to ``ddof=1``.
    """
    axes = _axes(axis, x.ndim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    centred = x.data - x.data.mean(axis=axes, keepdims=True)
    out = (centred * centred).sum(axis=axes, keepdims=keepdims) / (n - ddof)
    out = x.xp.asarray(out)

    def backward(g):
        g = g if keepdims else g.reshape(tuple(1 if i in axes else s for i, s in enumerate(x.shape)))
        return (g * centred * (2.0 / (n - ddof)),)
    return make_node(out, (x,), backward, "var")
