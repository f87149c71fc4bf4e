"""Group norm (and group norm + SiLU) as a learner writes it on paper, forward and backward:
the version to read before ``norm.py``.

Group norm splits the C channels of x (N, C, *) into G groups and standardises each (sample,
group) block of M = (C/G) * prod(*) values with its own mean and variance:

    mu = mean(x),  var = mean((x - mu)^2),  r = 1 / sqrt(var + eps),
    x_hat = (x - mu) r,   y = gamma_c x_hat + beta_c.

Backward. Write dxhat = g gamma, the gradient reaching x_hat. x_hat depends on x directly and
through mu and r (dr/dx_i = -r^3 (x_i - mu) / M); adding the three paths and using
sum(x_hat) = 0 and sum(x_hat^2) = M within a block gives

    dx = r (dxhat - mean(dxhat) - x_hat mean(dxhat x_hat)),   means over the block,
    dgamma_c = sum_{n, *} g x_hat,   dbeta_c = sum_{n, *} g.

``norm.group_norm`` computes the same numbers from per-channel sums, in blocks of samples
shared among threads; tests/test_references.py checks that the two agree.
"""
from __future__ import annotations

from typing import Any

from autograd.backend import get_array_module
from autograd.functional.activation_reference import silu_backward, silu_forward
from autograd.functional.norm import _check_group_norm, _data, _node
from autograd.tensor import Tensor


def group_norm_reference(input: Tensor, num_groups: int, weight: Tensor | None = None,
                         bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = gamma x_hat + beta, x_hat = (x - mu) r, r = 1/sqrt(var + eps) per (sample, group).
    dx = r (dxhat - mean(dxhat) - x_hat mean(dxhat x_hat)), dxhat = g gamma; dgamma = sum g x_hat,
    dbeta = sum g (over N and *)."""
    _check_group_norm("group_norm_reference", input, num_groups, weight, bias)
    gamma = _data(weight)
    y, x_hat, r = group_norm_forward(input.data, num_groups, gamma, _data(bias), eps)
    return _node("group_norm_reference", y, input, weight, bias,
                 lambda g, need: group_norm_backward(g, x_hat, r, gamma))


def group_norm_silu_reference(input: Tensor, num_groups: int, weight: Tensor | None = None,
                              bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = silu(z) = z s(z), z = group_norm(x, ...).    dL/dz = g (s + z s (1 - s)), then
    group_norm's backward from dL/dz."""
    _check_group_norm("group_norm_silu_reference", input, num_groups, weight, bias)
    gamma = _data(weight)
    z, x_hat, r = group_norm_forward(input.data, num_groups, gamma, _data(bias), eps)
    y, s = silu_forward(z)
    return _node("group_norm_silu_reference", y, input, weight, bias,
                 lambda g, need: group_norm_backward(silu_backward(g, z, s), x_hat, r, gamma))


def group_norm_forward(x: Any, num_groups: int, gamma: Any, beta: Any, eps: float) -> tuple[Any, Any, Any]:
    """(y, x_hat, r) for an array x (N, C, *); r is 1/std per (sample, group), shape (N, G, 1)."""
    xp = get_array_module(x)
    blocks = x.reshape(x.shape[0], num_groups, -1)  # one row of M values per (sample, group)
    mu = blocks.mean(axis=2, keepdims=True)
    var = ((blocks - mu) ** 2).mean(axis=2, keepdims=True)
    r = 1 / xp.sqrt(var + eps)
    x_hat = ((blocks - mu) * r).reshape(x.shape)
    y = x_hat
    if gamma is not None:
        y = y * _per_channel(gamma, x.ndim)
    if beta is not None:
        y = y + _per_channel(beta, x.ndim)
    return y, x_hat, r


def group_norm_backward(g: Any, x_hat: Any, r: Any, gamma: Any) -> tuple[Any, Any, Any]:
    """(dx, dgamma, dbeta) from g = dL/dy, the forward's x_hat and r, and gamma (or None)."""
    n, num_groups = r.shape[:2]
    dxhat = g if gamma is None else g * _per_channel(gamma, g.ndim)
    d = dxhat.reshape(n, num_groups, -1)
    xh = x_hat.reshape(n, num_groups, -1)
    dx = r * (d - d.mean(axis=2, keepdims=True) - xh * (d * xh).mean(axis=2, keepdims=True))
    over = (0,) + tuple(range(2, g.ndim))  # every axis but the channels
    return dx.reshape(g.shape), (g * x_hat).sum(axis=over), g.sum(axis=over)


def _per_channel(v: Any, ndim: int) -> Any:
    """(C,) -> (1, C, 1, ..., 1), to broadcast against (N, C, *)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))
