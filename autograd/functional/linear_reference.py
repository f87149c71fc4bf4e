"""linear_silu and dropout as a learner writes them on paper, forward and backward: the
versions to read before ``linear.py``.

linear_silu is silu(x W^T + b); the chain rule takes g back through the SiLU first (dL/dz),
then through the linear layer. Dropout multiplies by a random 0/1 mask and rescales by
1/(1 - p), so E[y] = x; its backward multiplies by the same mask. ``linear.py`` computes the
same numbers on rows shared among threads; tests/test_references.py checks that they agree
(the dropout mask too, drawn from the same generator).
"""
from __future__ import annotations

from typing import Any

from autograd.backend import get_array_module
from autograd.functional.activation_reference import silu_backward, silu_forward
from autograd.random import default_generator
from autograd.tensor import Tensor, make_node


def linear_silu_reference(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = silu(z), z = x W^T + b.    dL/dz = g (s + z s (1 - s)); dL/dx = dL/dz W, dL/dW = dL/dz^T x,
    dL/db = sum dL/dz (over every leading dimension of x)."""
    if weight.ndim != 2 or input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear_silu_reference: input (*, in_features) {input.shape} does not match "
                         f"weight (out_features, in_features) {weight.shape}")
    w = weight.data
    x = input.data.reshape(-1, w.shape[1])  # (B, in): every leading dimension folded into one
    z = x @ w.T
    if bias is not None:
        z = z + bias.data
    y, s = silu_forward(z)

    def backward(g: Any) -> tuple[Any, ...]:
        dz = silu_backward(g.reshape(z.shape), z, s)
        dx = (dz @ w).reshape(input.shape)
        dw = dz.T @ x
        return (dx, dw) if bias is None else (dx, dw, dz.sum(axis=0))

    parents = (input, weight) if bias is None else (input, weight, bias)
    return make_node(y.reshape(input.shape[:-1] + (w.shape[0],)), parents, backward, "linear_silu_reference")


def dropout_reference(input: Tensor, p: float = 0.5, training: bool = True, generator: Any = None) -> Tensor:
    """y = x m / (1 - p), m_i ~ Bernoulli(1 - p).    dL/dx = g m / (1 - p).

    The same arguments as ``linear.dropout``, and the same mask from the same generator state.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout_reference: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    x = input.data
    if p == 1.0:  # everything dropped (and nothing drawn)
        keep, scale = input.xp.zeros(x.shape, dtype=bool), 0.0
    else:
        rng = default_generator(input.xp) if generator is None else generator
        keep, scale = bernoulli_keep(rng, x, p), 1 / (1 - p)
    y = x * keep * scale
    return make_node(y, (input,), lambda g: (g * keep * scale,), "dropout_reference")


def bernoulli_keep(generator: Any, x: Any, p: float) -> Any:
    """The mask m, True with probability 1 - p, one draw per element of x in the order the
    elements lie in memory (so a channels-last x draws channel by channel within a pixel).

    NumPy: u are 32-bit halves of the generator's raw 64-bit draws, and P(u >= round(p 2^32))
    = 1 - p to within 2^-33. CuPy: u uniform on [0, 1), and P(u >= p) = 1 - p.
    """
    xp = get_array_module(x)
    order = sorted(range(x.ndim), key=lambda d: -abs(x.strides[d]))  # axes, slowest to fastest in memory
    shape_in_memory = tuple(x.shape[d] for d in order)
    if getattr(generator, "bit_generator", None) is not None:
        u = generator.bit_generator.random_raw(-(-x.size // 2)).view(xp.uint32)[:x.size]
        keep = u >= xp.uint32(min(round(p * 2**32), 2**32 - 1))
    else:
        dtype = x.dtype if x.dtype in (xp.float32, xp.float64) else xp.float32
        keep = generator.random(shape_in_memory or (1,), dtype=dtype) >= p
    back = sorted(range(x.ndim), key=order.__getitem__)  # memory order -> x's axes
    return keep.reshape(shape_in_memory).transpose(back)
