"""Check an analytic gradient against central finite differences.

For a scalar L(x), dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), with error O(eps^2).
A function with a non-scalar output is reduced to the scalar L = sum(f(x) * v) for a fixed
random v, which checks the whole vector-Jacobian product v^T J that backward computes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy

from autograd.backend import get_array_module, to_numpy
from autograd.tensor import Tensor, no_grad


def central_differences(loss_value: Callable[[], float], x: Any, eps: float = 1e-6,
                        index: tuple[int, ...] | None = None) -> Any:
    """dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps) for every element i of the array
    ``x`` (or only the element ``index``), nudging x in place and restoring it; ``loss_value()``
    must read x. Returns a float64 NumPy array of x's shape (a number with ``index``)."""
    grad = numpy.zeros(x.shape)
    for i in numpy.ndindex(x.shape) if index is None else [index]:
        orig = float(x[i])
        x[i] = orig + eps
        plus = loss_value()
        x[i] = orig - eps
        minus = loss_value()
        x[i] = orig
        grad[i] = (plus - minus) / (2 * eps)
    return grad if index is None else grad[index]


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree; the message says where."""


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """True if ``fn``'s backward matches finite differences for every input requiring grad.

    ``inputs`` must be float64 tensors (float32 rounding, ~1e-7, would swamp differences of
    size eps). Raises GradcheckError naming the input index, the element, and both values.
    """
    inputs = list(inputs)
    for k, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != numpy.float64:
            raise TypeError(f"gradcheck: input {k} has dtype {x.dtype}; use float64 (x.astype('float64'))")
    checked = [k for k, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")

    out = fn(*inputs)
    xp = get_array_module(out.data)
    rng = numpy.random.default_rng(seed)
    v = xp.asarray(rng.standard_normal(out.shape))

    def loss_value() -> float:
        with no_grad():
            return float((fn(*inputs).data * v).sum())

    for k in checked:
        inputs[k].grad = None
    (out * Tensor(v)).sum().backward()

    for k in checked:
        x = inputs[k]
        analytic = to_numpy(x.grad) if x.grad is not None else numpy.zeros(x.shape)
        # A private C-ordered copy: nudging it in place perturbs x alone (never an array x shares
        # memory with), and unlike ascontiguousarray it keeps a 0-d input 0-d.
        x.data = x.data.copy(order="C")
        numeric = central_differences(loss_value, x.data, eps)
        bad = ~numpy.isclose(analytic, numeric, atol=atol, rtol=rtol)
        if bad.any():
            where = tuple(int(i) for i in numpy.argwhere(bad)[0])
            raise GradcheckError(
                f"gradcheck: input {k} (shape {x.shape}), element {where}: analytic {analytic[where]:.8g} "
                f"vs numeric {numeric[where]:.8g} (atol={atol}, rtol={rtol}); "
                f"{int(bad.sum())} of {x.size} elements differ")
    return True
