"""Binary arithmetic: + - * / ** @ and unary minus, with NumPy broadcasting.

Broadcasting copies an input along new or size-1 axes, so its gradient is the sum of the
output gradient over those axes (``unbroadcast``). Each backward returns None for an input
that does not require grad, so no work is spent on constants.
"""
from __future__ import annotations

from typing import Any

from autograd.backend import device_of
from autograd.ops import _blocks
from autograd.tensor import Tensor, as_tensor, make_node

# Below this size an elementwise op runs whole on the calling thread: sharing it out costs more.
_SPLIT_BYTES = _blocks.SPLIT_BYTES

def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``.

    If y = broadcast(x) then dL/dx_i = sum over the copies j of x_i of dL/dy_j.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _operands(a: Any, b: Any, op: str) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors on one device; numbers take the other operand's dtype."""
    if not isinstance(a, Tensor):
        a = as_tensor(a, like=b)
    elif not isinstance(b, Tensor):
        b = as_tensor(b, like=a)
    elif device_of(a.data) != device_of(b.data):
        raise RuntimeError(f"{op}: operands are on different devices: {a.device!r} (shape {a.shape}) "
                           f"and {b.device!r} (shape {b.shape}); move one with .to(...)")
    return a, b


def _broadcast_error(op: str, a: Tensor, b: Tensor) -> ValueError:
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


def add(a: Any, b: Any) -> Tensor:
    """a + b.    d/da = 1,  d/db = 1."""
    a, b = _operands(a, b, "add")
    try:
        out = _blocks.elementwise(a.xp.add, a.data, b.data, _SPLIT_BYTES)
    except ValueError:
        raise _broadcast_error("add", a, b) from None

    def backward(g):
        return (unbroadcast(g, a.shape) if a.requires_grad else None,
                unbroadcast(g, b.shape) if b.requires_grad else None)
    return make_node(out, (a, b), backward, "add")


def sub(a: Any, b: Any) -> Tensor:
    """a - b.    d/da = 1,  d/db = -1."""
    a, b = _operands(a, b, "sub")
    try:
        out = _blocks.elementwise(a.xp.subtract, a.data, b.data, _SPLIT_BYTES)
    except ValueError:
        raise _broadcast_error("sub", a, b) from None

    def backward(g):
        return (unbroadcast(g, a.shape) if a.requires_grad else None,
                unbroadcast(-g, b.shape) if b.requires_grad else None)
    return make_node(out, (a, b), backward, "sub")


def mul(a: Any, b: Any) -> Tensor:
    """a * b.    d/da = b,  d/db = a."""
    a, b = _operands(a, b, "mul")
    try:
        out = _blocks.elementwise(a.xp.multiply, a.data, b.data, _SPLIT_BYTES)
    except ValueError:
        raise _broadcast_error("mul", a, b) from None

    def backward(g):
        xp = a.xp
        return (unbroadcast(_blocks.elementwise(xp.multiply, g, b.data, _SPLIT_BYTES), a.shape)
                if a.requires_grad else None,
                unbroadcast(_blocks.elementwise(xp.multiply, g, a.data, _SPLIT_BYTES), b.shape)
                if b.requires_grad else None)
    return make_node(out, (a, b), backward, "mul")


def div(a: Any, b: Any) -> Tensor:
    """a / b.    d/da = 1/b,  d/db = -a/b^2."""
    a, b = _operands(a, b, "div")
    try:
        out = _blocks.elementwise(a.xp.divide, a.data, b.data, _SPLIT_BYTES)
    except ValueError:
        raise _broadcast_error("div", a, b) from None

    def backward(g):
        return (unbroadcast(g / b.data, a.shape) if a.requires_grad else None,
                unbroadcast(-g * out / b.data, b.shape) if b.requires_grad else None)
    return make_node(out, (a, b), backward, "div")


def pow(a: Any, b: Any) -> Tensor:
    """a ** b.   d/da = b a^(b-1),  d/db = a^b log(a)."""
    if isinstance(a, Tensor) and not isinstance(b, Tensor) and not hasattr(b, "shape"):
        p = float(b)  # the common case, x ** 2: a plain number exponent

        def backward_scalar(g):
            if p == 0:  # x ** 0 is the constant 1; p x^(p-1) would give 0 * inf = nan at x = 0
                return (a.xp.zeros_like(a.data),)
            return (g * (p * a.data ** (p - 1)),)
        return make_node(a.data ** p, (a,), backward_scalar, f"pow({p:g})")
    a, b = _operands(a, b, "pow")
    try:
        out = a.data ** b.data
    except ValueError:
        raise _broadcast_error("pow", a, b) from None

    def backward(g):
        xp = a.xp
        return (unbroadcast(g * b.data * a.data ** (b.data - 1), a.shape) if a.requires_grad else None,
                unbroadcast(g * out * xp.log(a.data), b.shape) if b.requires_grad else None)
    return make_node(out, (a, b), backward, "pow")


def neg(a: Tensor) -> Tensor:
    """-a.       d/da = -1."""
    return make_node(-a.data, (a,), lambda g: (-g,), "neg")


def matmul(a: Any, b: Any) -> Tensor:
    """a @ b, batched over leading axes.   dL/da = g @ b^T,  dL/db = a^T @ g.

    1-D operands are treated as a row (a) or a column (b) vector, as in NumPy.
    """
    a, b = _operands(a, b, "matmul")
    try:
        out = a.data @ b.data
    except ValueError:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                         f"(last axis of a must equal second-to-last of b)") from None

    def backward(g):
        xp = a.xp
        a2 = a.data[None, :] if a.ndim == 1 else a.data  # promote vectors to matrices
        b2 = b.data[:, None] if b.ndim == 1 else b.data
        batch = g.shape[:g.ndim - (a.ndim > 1) - (b.ndim > 1)]
        g2 = g.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(g2 @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if b.requires_grad:
            gb = unbroadcast(xp.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb
    return make_node(out, (a, b), backward, "matmul")
