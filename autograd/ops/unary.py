"""Elementwise functions of one tensor: y = f(x), so dL/dx = dL/dy * f'(x).

Where f' is cheaper to write in terms of the output y (exp, sqrt, tanh, sigmoid) the
backward reuses ``out`` instead of recomputing f.
"""
from __future__ import annotations

from autograd.tensor import Tensor, make_node


def exp(x: Tensor) -> Tensor:
    """y = exp(x).      dy/dx = exp(x) = y."""
    out = x.xp.exp(x.data)
    return make_node(out, (x,), lambda g: (g * out,), "exp")


def log(x: Tensor) -> Tensor:
    """y = log(x).      dy/dx = 1 / x."""
    return make_node(x.xp.log(x.data), (x,), lambda g: (g / x.data,), "log")


def sqrt(x: Tensor) -> Tensor:
    """y = sqrt(x).     dy/dx = 1 / (2 sqrt(x)) = 1 / (2y)."""
    out = x.xp.sqrt(x.data)
    return make_node(out, (x,), lambda g: (g / (2 * out),), "sqrt")


def tanh(x: Tensor) -> Tensor:
    """y = tanh(x).     dy/dx = 1 - tanh(x)^2 = 1 - y^2."""
    out = x.xp.tanh(x.data)
    return make_node(out, (x,), lambda g: (g * (1 - out * out),), "tanh")


def sigmoid(x: Tensor) -> Tensor:
    """y = 1 / (1 + exp(-x)).     dy/dx = y (1 - y)."""
    xp = x.xp
    # 0.5 (1 + tanh(x/2)) equals the logistic function and never overflows exp for large |x|.
    out = 0.5 * (1 + xp.tanh(0.5 * x.data))
    return make_node(out, (x,), lambda g: (g * out * (1 - out),), "sigmoid")


def relu(x: Tensor) -> Tensor:
    """y = max(x, 0).   dy/dx = 1 if x > 0 else 0."""
    out = x.xp.maximum(x.data, 0)
    return make_node(out, (x,), lambda g: (g * (x.data > 0),), "relu")


def sin(x: Tensor) -> Tensor:
    """y = sin(x).      dy/dx = cos(x)."""
    return make_node(x.xp.sin(x.data), (x,), lambda g: (g * x.xp.cos(x.data),), "sin")


def cos(x: Tensor) -> Tensor:
    """y = cos(x).      dy/dx = -sin(x)."""
    return make_node(x.xp.cos(x.data), (x,), lambda g: (-g * x.xp.sin(x.data),), "cos")


def abs(x: Tensor) -> Tensor:
    """y = |x|.         dy/dx = sign(x)  (0 at x = 0)."""
    return make_node(x.xp.abs(x.data), (x,), lambda g: (g * x.xp.sign(x.data),), "abs")
