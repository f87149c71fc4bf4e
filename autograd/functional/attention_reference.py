"""Scaled dot-product attention as a learner writes it on paper, forward and backward: the
version to read before ``attention.py``.

    S = Q K^T * scale + mask,   P = softmax(S) over the keys (each row sums to 1),   O = P V.

Backward, with g = dO: O = P V gives dV = P^T dO and dP = dO V^T. Each row of P is a softmax,
whose Jacobian is diag(p) - p p^T, so dS = P * (dP - rowsum(dP * P)). Then S = Q K^T * scale
gives dQ = dS K * scale and dK = dS^T Q * scale, and an added float mask gets dS itself.
Inputs broadcast over their leading dimensions; their gradients are summed back over them.

``attention.scaled_dot_product_attention`` computes the same numbers with fewer temporaries
and, for big batches, a slice of the batch per thread; tests/test_references.py checks that
the two agree.
"""
from __future__ import annotations

import math
from typing import Any

from autograd.backend import get_array_module
from autograd.functional.attention import _additive_mask, _as_tensor_mask, _check_qkv
from autograd.ops.arithmetic import unbroadcast
from autograd.tensor import Tensor, make_node


def scaled_dot_product_attention_reference(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any = None,
                                           is_causal: bool = False, scale: float | None = None) -> Tensor:
    """O = P V, P = softmax(Q K^T * scale + mask).    dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)),
    dQ = dS K * scale, dK = dS^T Q * scale, d(mask) = dS.

    The same arguments as ``F.scaled_dot_product_attention`` (without dropout_p).
    """
    _check_qkv(query, key, value)
    mask_t = _as_tensor_mask(attn_mask)
    mask = _additive_mask(query, key, mask_t, is_causal)  # 0 where allowed, -inf where masked
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    xp = query.xp
    q, k, v = query.data, key.data, value.data
    s = q @ xp.swapaxes(k, -1, -2) * scale
    if mask is not None:
        s = s + mask
    p = softmax_rows(s)
    out = p @ v

    def backward(g: Any) -> tuple[Any, ...]:
        dv = xp.swapaxes(p, -1, -2) @ g
        dp = g @ xp.swapaxes(v, -1, -2)
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
        dq = ds @ k * scale
        dk = xp.swapaxes(ds, -1, -2) @ q * scale
        grads = (unbroadcast(dq, query.shape), unbroadcast(dk, key.shape), unbroadcast(dv, value.shape))
        return grads if mask_t is None else grads + (unbroadcast(ds, mask_t.shape),)

    parents = (query, key, value) + ((mask_t,) if mask_t is not None else ())
    return make_node(out, parents, backward, "scaled_dot_product_attention_reference")


def softmax_rows(s: Any) -> Any:
    """softmax over the last axis, each row shifted by its maximum first (nothing overflows); a
    row that is all -inf (every key masked) gets probability 0 everywhere instead of 0/0."""
    xp = get_array_module(s)
    m = s.max(axis=-1, keepdims=True)
    e = xp.exp(s - xp.where(xp.isfinite(m), m, 0))
    total = e.sum(axis=-1, keepdims=True)
    return e / xp.where(total > 0, total, 1)
