"""Normalisation: group_norm (and group_norm_silu, its fusion with the activation that follows it
in every residual block), and layer_norm. Whole ops with closed-form backwards.

Read ``norm_reference.py`` first: group norm and group norm + SiLU as on paper, forward and
backward, with the derivation of dx = r (dxhat - mean(dxhat) - x_hat mean(dxhat x_hat)),
dxhat = g gamma, r = 1/std, means over each (sample, group) block of M = (C/G) * prod(*) values.
This module computes the same numbers fast.

How it is computed. Every reduction runs over the spatial axes for each (n, c) and is then
summed within a group on the tiny (N, C) result. Reducing (x.reshape(N, G, C/G, H, W)) over
three axes at once is many times slower when x is an NCHW view of channels-last (NHWC) memory,
which convolutions may hand us (benchmarks/results/autograd-measurements.md#group-norm);
per-(n, c) reductions are fast in both layouts, and nothing is transposed or copied. The
backward needs only two such sums per (n, c),
    sum_* g   and   sum_* g x   (so sum_* g x_hat = r (sum_* g x - mu sum_* g)),
after which dx = A g + B x + C with A per (n, c) and B, C per (n, g). So the forward keeps just
mu and r per (n, g), not x_hat.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from autograd.backend import get_array_module
from autograd.functional.activation import silu_grad_rows, silu_of_half
from autograd.ops._blocks import batch_blocks, run_blocks, sum_runs
from autograd.tensor import Tensor, is_grad_enabled, make_node

# Samples processed at a time: each op makes 4-12 passes over its (N, C, *) array, and a block
# this size is still in the core's cache for every pass after the first (see autograd/ops/_blocks.py).
_BLOCK_BYTES = 1 << 20


# --------------------------------------------------------------------------- public ops
def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """y = gamma x_hat + beta, x_hat = (x - mu)/sqrt(var + eps) per (sample, group of C/G channels).
    dx = r (dxhat - mean(dxhat) - x_hat mean(dxhat x_hat)), dxhat = g gamma, r = 1/std;
    dgamma = sum g x_hat, dbeta = sum g (over N and *)."""
    _check_group_norm("group_norm", input, num_groups, weight, bias)
    x, gamma = input.data, _data(weight)
    y, _, mu, rstd = _normalize(x, num_groups, gamma, _data(bias), eps)

    def grads_of(g, need):
        return _normalize_backward(g, x, num_groups, gamma, mu, rstd, need)
    return _node("group_norm", y, input, weight, bias, grads_of)


def group_norm_silu(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
                    eps: float = 1e-5) -> Tensor:
    """y = silu(z) = z s(z), z = group_norm(x, ...), s the logistic, as one op.
    dL/dz = g (s + y (1 - s)), then group_norm's backward from dL/dz.

    Against silu(group_norm(...)) it keeps one activation-sized array fewer alive for the
    backward (s, not z and s; y is this node's own output) and allocates two fewer (y is made
    in z's buffer, dL/dx in dL/dz's).
    """
    _check_group_norm("group_norm_silu", input, num_groups, weight, bias)
    x, gamma = input.data, _data(weight)
    recording = is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias))
    y, s, mu, rstd = _normalize(x, num_groups, gamma, _data(bias), eps, silu=True, keep_s=recording)

    def grads_of(g, need):
        return _normalize_backward(g, x, num_groups, gamma, mu, rstd, need, y=y, s=s)
    return _node("group_norm_silu", y, input, weight, bias, grads_of)


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = gamma x_hat + beta, x_hat = (x - mu)/sqrt(var + eps) over the last len(normalized_shape) dims.
    dx = r (dxhat - mean(dxhat) - x_hat mean(dxhat x_hat)), dxhat = g gamma; dgamma = sum g x_hat,
    dbeta = sum g (over the leading dims).

    Closed-form backward, as group_norm's; the forward keeps x_hat (one array) and r.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.ndim < k or input.shape[input.ndim - k:] != shape:
        raise ValueError(f"layer_norm: input shape {input.shape} does not end in normalized_shape {shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != shape:
            raise ValueError(f"layer_norm: {name} must have normalized_shape {shape}, got {p.shape}")
    xp, x = input.xp, input.data
    axes = tuple(range(x.ndim - k, x.ndim))
    lead = tuple(range(x.ndim - k))
    x_hat = x - x.mean(axis=axes, keepdims=True)
    rstd = 1 / xp.sqrt(xp.square(x_hat).mean(axis=axes, keepdims=True) + eps)
    x_hat *= rstd
    gamma, beta = _data(weight), _data(bias)
    if gamma is not None:
        y = x_hat * gamma
        if beta is not None:
            y += beta
    else:
        y = x_hat if beta is None else x_hat + beta

    def grads_of(g, need):
        need_x, need_gamma, need_beta = need
        dgamma = (g * x_hat).sum(axis=lead) if need_gamma else None
        dbeta = g.sum(axis=lead) if need_beta else None
        dx = None
        if need_x:
            dx = g * gamma if gamma is not None else g.copy()   # dxhat, a buffer of our own
            mean_dxhat_xhat = (dx * x_hat).mean(axis=axes, keepdims=True)
            dx -= dx.mean(axis=axes, keepdims=True)
            dx -= x_hat * mean_dxhat_xhat
            dx *= rstd
        return dx, dgamma, dbeta
    return _node("layer_norm", y, input, weight, bias, grads_of)


# ---------------------------------------- group norm core: blocks of samples, on every core
def _per_channel(v: Any, group_size: int, ndim: int) -> Any:
    """(N, G) per-group values -> (N, C, 1, ..., 1), each value repeated for the group's channels."""
    xp = get_array_module(v)
    return xp.repeat(v, group_size, axis=1).reshape(v.shape[:1] + (-1,) + (1,) * (ndim - 2))


def _group_sum(v: Any, num_groups: int) -> Any:
    """(N, C) per-channel values -> (N, G) sums over each group's channels."""
    return v.reshape(v.shape[0], num_groups, -1).sum(axis=2)


def _axes(a: Any) -> str:
    return "nc" + "defghijklm"[:a.ndim - 2]


def _spatial_sum(a: Any) -> Any:
    """sum over the spatial axes of a, per (n, c). (einsum: faster than a.sum(axis=(2, 3)) on an
    NCHW view of channels-last memory, as fast on contiguous NCHW:
    benchmarks/results/autograd-measurements.md#group-norm.)"""
    return get_array_module(a).einsum(f"{_axes(a)}->nc", a)


def _sum_of_products(a: Any, b: Any) -> Any:
    """sum over the spatial axes of a * b, per (n, c), without an (N, C, *) temporary."""
    return get_array_module(a).einsum(f"{_axes(a)},{_axes(a)}->nc", a, b)


def _blocks(x: Any) -> list[slice]:
    return batch_blocks(get_array_module(x), x.shape[0], x[:1].nbytes, _BLOCK_BYTES)


def _normalize(x: Any, num_groups: int, gamma: Any, beta: Any, eps: float,
               silu: bool = False, keep_s: bool = True) -> tuple[Any, Any, Any, Any]:
    """(y, s, mu, r): y = gamma x_hat + beta (or z s(z) of that z, with ``silu``) in a fresh
    buffer of x's memory layout, s = s(z) the logistic (None without ``silu`` or ``keep_s``:
    only a backward needs it), and mu and r = 1/std per (n, g). Blocks of samples at a time
    (see ``_BLOCK_BYTES``), on every core."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    group_size = c // num_groups
    m = group_size * math.prod(x.shape[2:])
    expand = (-1,) + (1,) * (x.ndim - 2)  # (C,) -> (C, 1, ..., 1)
    y = xp.empty_like(x)
    s: Any = xp.empty_like(x) if silu and keep_s else None
    mu = xp.empty((n, num_groups), dtype=x.dtype)
    rstd = xp.empty((n, num_groups), dtype=x.dtype)
    # With silu, normalise to h = z/2 directly: then s = (1 + tanh h)/2 and y = z s = h (1 + tanh h),
    # three passes where logistic(z) and z * s take five.
    half = 0.5 if silu else 1.0
    shift = None if beta is None else beta.reshape(expand) * half

    def normalize_blocks(blocks: list[slice]) -> None:
        scratch: Any = None if s is not None or not silu or not blocks else xp.empty_like(x[blocks[0]])
        for b in blocks:
            xb, yb = x[b], y[b]
            mu[b] = _group_sum(_spatial_sum(xb), num_groups) / m
            # Two passes (centre, then square) keep the variance accurate when |mu| >> std.
            xp.subtract(xb, _per_channel(mu[b], group_size, x.ndim), out=yb)
            var = _group_sum(_sum_of_products(yb, yb), num_groups) / m
            rstd[b] = 1 / xp.sqrt(var + eps)
            scale = _per_channel(rstd[b] * half, group_size, x.ndim)
            if gamma is not None:
                scale = scale * gamma.reshape(expand)
            yb *= scale
            if shift is not None:
                yb += shift
            if silu:  # yb holds h = z/2
                silu_of_half(xp, yb, s[b] if s is not None else scratch[:yb.shape[0]], keep_s=s is not None)

    run_blocks(normalize_blocks, _blocks(x))
    return y, s, mu, rstd


def _normalize_backward(g: Any, x: Any, num_groups: int, gamma: Any, mu: Any, rstd: Any,
                        need: tuple[bool, bool, bool], y: Any = None, s: Any = None) -> tuple[Any, Any, Any]:
    """(dx, dgamma, dbeta) from g = dL/dy; entries not in ``need`` are None. With the SiLU's
    output ``y`` and logistic ``s`` (group_norm_silu), g is first taken back through the
    SiLU: dL/dz = g (s + y (1 - s)). Blocks of samples at a time, in cache, on every core."""
    xp = get_array_module(g)
    need_x, need_gamma, need_beta = need
    c = x.shape[1]
    group_size = c // num_groups
    m = group_size * math.prod(x.shape[2:])
    silu = s is not None
    dx: Any = xp.empty_like(x) if need_x or silu else None

    def backward_blocks(blocks: list[slice]) -> tuple[Any, Any]:
        """dx for these blocks (written into dx), and their parts of dgamma and dbeta."""
        dgamma, dbeta = xp.zeros(c, dtype=g.dtype), xp.zeros(c, dtype=g.dtype)
        for b in blocks:
            gb = g[b]
            if silu:  # dL/dz into dx's block, where dx is then computed in place
                silu_grad_rows(xp, gb, y[b], s[b], out=dx[b])
                gb = dx[b]
            sum_g = _spatial_sum(gb)                                           # (n_b, C): sum_* g
            mu_c = xp.repeat(mu[b], group_size, axis=1)                       # (n_b, C)
            rstd_c = xp.repeat(rstd[b], group_size, axis=1)
            sum_g_xhat = rstd_c * (_sum_of_products(gb, x[b]) - mu_c * sum_g)  # (n_b, C): sum_* g x_hat
            dgamma += sum_g_xhat.sum(axis=0)
            dbeta += sum_g.sum(axis=0)
            if not need_x:
                continue
            if gamma is not None:  # sums of dxhat = g gamma, and of dxhat x_hat
                sum_g = sum_g * gamma
                sum_g_xhat = sum_g_xhat * gamma
            mean_dxhat = _group_sum(sum_g, num_groups) / m                     # (n_b, G)
            mean_dxhat_xhat = _group_sum(sum_g_xhat, num_groups) / m
            # dx = r (gamma g - mean_dxhat - (x - mu) r mean_dxhat_xhat) = A g + B x + C
            r = rstd[b]
            a = rstd_c if gamma is None else rstd_c * gamma
            a = a.reshape(a.shape + (1,) * (x.ndim - 2))
            coef_b = _per_channel(-r * r * mean_dxhat_xhat, group_size, x.ndim)
            coef_c = _per_channel(r * (mu[b] * r * mean_dxhat_xhat - mean_dxhat), group_size, x.ndim)
            dxb = dx[b]
            xp.multiply(gb, a, out=dxb)  # in place when gb is dx's own block
            dxb += x[b] * coef_b
            dxb += coef_c
        return dgamma, dbeta

    dgamma, dbeta = sum_runs(run_blocks(backward_blocks, _blocks(x)))
    return (dx if need_x else None), (dgamma if need_gamma else None), (dbeta if need_beta else None)


# --------------------------------------------------------------------------- argument checks and graph nodes
def _check_group_norm(op: str, input: Tensor, num_groups: int, weight: Tensor | None,
                      bias: Tensor | None) -> None:
    if input.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C, *), got {input.shape}")
    c = input.shape[1]
    if not isinstance(num_groups, int) or num_groups < 1 or c % num_groups:
        divisors = [d for d in range(1, c + 1) if c % d == 0]
        raise ValueError(f"{op}: the number of channels C={c} must be divisible by num_groups="
                         f"{num_groups}; valid num_groups for C={c}: {divisors}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != (c,):
            raise ValueError(f"{op}: {name} must have shape (C,) = ({c},) for input {input.shape}, got {p.shape}")
        if p is not None and p.device != input.device:
            raise RuntimeError(f"{op}: input is on {input.device!r} but {name} on {p.device!r}")


def _node(op: str, out: Any, input: Tensor, weight: Tensor | None, bias: Tensor | None, grads_of) -> Tensor:
    """make_node with parents (input, [weight], [bias]); ``grads_of(g, need)`` returns (dx, dw, db)."""
    params = tuple(p for p in (weight, bias) if p is not None)

    def backward(g):
        need = (input.requires_grad, weight is not None and weight.requires_grad,
                bias is not None and bias.requires_grad)
        dx, dw, db = grads_of(g, need)
        return (dx,) + tuple(dw if p is weight else db for p in params)
    return make_node(out, (input,) + params, backward, op)


def _data(t: Tensor | None) -> Any:
    return None if t is None else t.data
