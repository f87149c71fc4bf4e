"""linear_silu, mlp_silu and dropout as a learner writes them on paper, forward and backward:
the versions to read before ``linear.py``.

linear_silu is silu(x W^T + b); the chain rule takes g back through the SiLU first (dL/dz),
then through the linear layer. mlp_silu is a stack of them, and its backward the same steps
from the last layer to the first. Dropout multiplies by a random 0/1 mask and rescales by
1/(1 - p), so E[y] = x; its backward multiplies by the same mask. ``linear.py`` computes the
same numbers on rows shared among threads; tests/test_references.py checks that they agree
(the dropout mask too, drawn from the same generator).
"""
from __future__ import annotations

from collections.abc import Sequence
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


def mlp_silu_reference(input: Tensor, weights: Sequence[Tensor],
                       biases: Sequence[Tensor | None] | None = None) -> Tensor:
    """h_0 = x, h_i = silu(z_i), z_i = h_{i-1} W_i^T + b_i.    Back from g_n = g: dL/dz_i = g_i silu'(z_i),
    g_{i-1} = dL/dz_i W_i, dL/dW_i = dL/dz_i^T h_{i-1}, dL/db_i = sum dL/dz_i; dL/dx = g_0."""
    weights = list(weights)
    biases = [None] * len(weights) if biases is None else list(biases)
    if not weights or len(biases) != len(weights):
        raise ValueError(f"mlp_silu_reference: give one or more weights and one bias (or None) per "
                         f"weight, got {len(weights)} weights and {len(biases)} biases")
    h = [input.data.reshape(-1, input.shape[-1])]  # h[0] = x, every leading dimension folded
    z, s = [], []
    for w, b in zip(weights, biases):
        if w.ndim != 2 or w.shape[1] != h[-1].shape[1]:
            raise ValueError(f"mlp_silu_reference: weight {w.shape} does not take inputs of width {h[-1].shape[1]}")
        z.append(h[-1] @ w.data.T + (0 if b is None else b.data))
        y, s_i = silu_forward(z[-1])
        h.append(y)
        s.append(s_i)

    def backward(g: Any) -> tuple[Any, ...]:
        g_h = g.reshape(h[-1].shape)
        dws: list[Any] = []
        dbs: list[Any] = []
        for i in reversed(range(len(weights))):
            dz = silu_backward(g_h, z[i], s[i])
            dws.insert(0, dz.T @ h[i])
            dbs.insert(0, dz.sum(axis=0))
            g_h = dz @ weights[i].data
        return (g_h.reshape(input.shape), *dws, *(db for b, db in zip(biases, dbs) if b is not None))

    parents = (input, *weights, *(b for b in biases if b is not None))
    out_shape = input.shape[:-1] + (weights[-1].shape[0],)
    return make_node(h[-1].reshape(out_shape), parents, backward, "mlp_silu_reference")


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
