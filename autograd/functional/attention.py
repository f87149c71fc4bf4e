"""softmax, log_softmax and scaled dot-product attention, each a whole op with its own backward.

Read ``attention_reference.py`` first: attention as on paper, forward and backward, with the
softmax Jacobian worked out. This module computes the same numbers fast.

Numerical stability: softmax is invariant to shifting a row by a constant, so every row is
shifted by its maximum before exp; the largest term becomes exp(0) = 1 and nothing overflows.
A row that is entirely -inf (an attention query with every key masked out) gets probability
zero everywhere instead of 0/0 = NaN, as PyTorch's own attention does; its gradient is zero.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

from autograd.backend import get_array_module
from autograd.ops import _blocks
from autograd.ops.arithmetic import unbroadcast
from autograd.ops.shape import _axis
from autograd.tensor import Tensor, is_array, make_node

# Below this many bytes of q, k and v together, attention runs whole on the calling thread.
_SPLIT_BYTES = 1 << 20


def _int_dim(dim: Any, op: str) -> int:
    """``dim`` as a Python int, or a TypeError naming the op (a float or bool is no axis)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an integer axis, got {dim!r}")
    return int(dim)


def softmax(input: Tensor, dim: int) -> Tensor:
    """y_i = exp(x_i) / sum_j exp(x_j) along ``dim``.    dL/dx = y * (g - sum_j g_j y_j)."""
    dim = _axis(_int_dim(dim, "softmax"), input.ndim, "softmax")
    y = _softmax_inplace(input.data.copy(), dim)

    def backward(g):
        gx = g - (g * y).sum(axis=dim, keepdims=True)
        gx *= y
        return (gx,)
    return make_node(y, (input,), backward, "softmax")


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """y_i = x_i - log sum_j exp(x_j) along ``dim``.    dL/dx = g - exp(y) * sum_j g_j."""
    dim = _axis(_int_dim(dim, "log_softmax"), input.ndim, "log_softmax")
    xp, x = input.xp, input.data
    y = x - _row_max(x, dim)
    y -= xp.log(xp.maximum(xp.exp(y).sum(axis=dim, keepdims=True), 1))  # max(., 1): as in softmax

    def backward(g):
        gx = xp.exp(y)
        gx *= -g.sum(axis=dim, keepdims=True)
        gx += g
        return (gx,)
    return make_node(y, (input,), backward, "log_softmax")


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """O = P V,  P = softmax(Q K^T * scale + mask) over keys.    With dS = P * (dP - rowsum(dP * P)), dP = dO V^T:
    dV = P^T dO,  dQ = dS K * scale,  dK = dS^T Q * scale,  d(mask) = dS.

    Shapes: query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); the leading
    dimensions broadcast. ``scale`` defaults to 1/sqrt(E). ``attn_mask`` broadcasts to
    (..., L, S): bool (True = may attend) or float (added to the scores; a float Tensor that
    requires grad, e.g. a learned position bias, receives dS). ``is_causal`` lets query i see
    keys 0..i. Only ``dropout_p=0`` is supported.
    """
    if dropout_p != 0.0:
        raise NotImplementedError("scaled_dot_product_attention: dropout_p must be 0 (attention dropout "
                                  "is not implemented); apply F.dropout to the output instead")
    _check_qkv(query, key, value)
    mask_t = _as_tensor_mask(attn_mask)
    mask = _additive_mask(query, key, mask_t, is_causal)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    q, k, v = query.data, key.data, value.data
    if mask is None and _splittable(q, k, v):
        return _attention_split_by_batch(query, key, value, scale)
    p, out = _attend(q, k, v, mask, scale)

    def backward(g):
        need_mask = mask_t is not None and mask_t.requires_grad
        dq, dk, dv, ds = _attend_backward(g, q, k, v, p, out, scale, query.requires_grad,
                                          key.requires_grad, value.requires_grad, need_mask)
        grads = tuple(None if d is None else unbroadcast(d, t.shape)
                      for d, t in ((dq, query), (dk, key), (dv, value)))
        if mask_t is None:
            return grads
        return grads + ((unbroadcast(ds, mask_t.shape) if need_mask else None),)

    parents = (query, key, value) + ((mask_t,) if mask_t is not None else ())
    return make_node(out, parents, backward, "scaled_dot_product_attention")


def _row_max(a: Any, axis: int) -> Any:
    """max of ``a`` along ``axis`` (kept), with -inf rows mapped to 0 so that a - max stays -inf."""
    xp = get_array_module(a)
    m = a.max(axis=axis, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)


def _softmax_inplace(a: Any, axis: int) -> Any:
    """Overwrite the scores ``a`` with softmax(a) along ``axis`` and return it."""
    xp = get_array_module(a)
    a -= _row_max(a, axis)
    xp.exp(a, out=a)
    # Every row with a finite maximum contains exp(0) = 1, so its sum is >= 1; only a fully
    # masked row sums to 0, and max(sum, 1) turns its 0/0 into 0/1.
    a /= xp.maximum(a.sum(axis=axis, keepdims=True), 1)
    return a


def _as_tensor_mask(attn_mask: Any) -> Tensor | None:
    if attn_mask is None or isinstance(attn_mask, Tensor):
        return attn_mask
    if is_array(attn_mask):
        return Tensor(attn_mask)
    raise TypeError(f"scaled_dot_product_attention: attn_mask must be a Tensor, an array or None, "
                    f"got {type(attn_mask).__name__}")


def _additive_mask(query: Tensor, key: Tensor, attn_mask: Tensor | None, is_causal: bool) -> Any:
    """The mask as an array added to the scores (0 where allowed, -inf where masked), or None."""
    xp = query.xp
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
        # Query i sees keys 0..i (top-left aligned, as torch.ones(L, S).tril()).
        allowed = xp.tri(L, S, dtype=bool)
        return xp.where(allowed, 0, -math.inf).astype(query.dtype)
    if attn_mask is None:
        return None
    m = attn_mask.data
    if not _broadcasts_to(m.shape[-2:], (L, S)):
        raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {m.shape} does not broadcast "
                         f"to the scores' shape (..., L={L}, S={S})")
    if m.dtype == bool:  # True = may attend, as in PyTorch
        return xp.where(m, 0, -math.inf).astype(query.dtype)
    if m.dtype != query.dtype:
        raise TypeError(f"scaled_dot_product_attention: a float attn_mask must have the query's dtype "
                        f"{query.dtype}, got {m.dtype}")
    return m


def _attend(q: Any, k: Any, v: Any, mask: Any, scale: float, p: Any = None, out: Any = None) -> tuple[Any, Any]:
    """Array-level forward: (P, O), P = softmax(Q K^T * scale + mask), O = P V, written into
    ``p`` and ``out`` if given (else new arrays of the shapes the products broadcast to)."""
    xp = get_array_module(q)
    # Scale Q (L x E) rather than the scores (L x S): same result, fewer multiplications when E < S.
    p = xp.matmul(q * scale, xp.swapaxes(k, -1, -2), out=p)
    if mask is not None:
        if _broadcasts_to(mask.shape, p.shape):
            p += mask
        else:
            p = p + mask
    _softmax_inplace(p, -1)
    return p, xp.matmul(p, v, out=out)


def _attend_backward(g: Any, q: Any, k: Any, v: Any, p: Any, out: Any, scale: float, need_q: bool,
                     need_k: bool, need_v: bool, need_s: bool) -> tuple[Any, Any, Any, Any]:
    """Array-level backward: (dQ, dK, dV, dS) from g = dO, each None where not needed, in the
    shapes of the products (before any unbroadcast to a broadcast input's shape)."""
    xp = get_array_module(g)
    dq = dk = dv = ds = None
    if need_v:
        dv = xp.matmul(xp.swapaxes(p, -1, -2), g)
    if need_q or need_k or need_s:
        ds = xp.matmul(g, xp.swapaxes(v, -1, -2))            # dP
        # rowsum(dP * P) = rowsum(dO * O), since O = P V: an (L, Ev) product instead of (L, S).
        ds -= (g * out).sum(axis=-1, keepdims=True)
        ds *= p                                              # dS = P * (dP - rowsum(dP * P))
        if need_q:
            dq = xp.matmul(ds, k) * scale
        if need_k:
            dk = xp.matmul(xp.swapaxes(ds, -1, -2), q) * scale
    return dq, dk, dv, ds


def _splittable(q: Any, k: Any, v: Any) -> bool:
    """True where the same attention, one slice of the first axis per engine thread, pays off:
    NumPy arrays with equal leading dimensions (no broadcasting between them) and enough work."""
    lead = q.shape[:-2]
    return (get_array_module(q).__name__ == "numpy" and len(lead) >= 1 and lead[0] > 1
            and k.shape[:-2] == lead and v.shape[:-2] == lead and _blocks.num_threads() > 1
            and (q.size + k.size + v.size) * q.itemsize >= _SPLIT_BYTES)


def _attention_split_by_batch(query: Tensor, key: Tensor, value: Tensor, scale: float) -> Tensor:
    """scaled_dot_product_attention without a mask, ``_attend`` and ``_attend_backward`` run on
    a slice of the first (batch) axis per engine thread."""
    xp = query.xp
    q, k, v = query.data, key.data, value.data
    p = xp.empty(q.shape[:-1] + k.shape[-2:-1], dtype=xp.result_type(q, k))
    out = xp.empty(q.shape[:-1] + v.shape[-1:], dtype=xp.result_type(p, v))
    blocks = _blocks.even_blocks(xp, q.shape[0], 1)

    def forward(run: list[slice]) -> None:
        for r in run:
            _attend(q[r], k[r], v[r], None, scale, p=p[r], out=out[r])
    _blocks.run_blocks(forward, blocks)

    def backward(g):
        need = (query.requires_grad, key.requires_grad, value.requires_grad)
        grads = tuple(xp.empty_like(t.data) if n else None for t, n in zip((query, key, value), need))

        def backward_rows(run: list[slice]) -> None:
            for r in run:
                parts = _attend_backward(g[r], q[r], k[r], v[r], p[r], out[r], scale, need[0], need[1], need[2],
                                         False)
                for grad, part in zip(grads, parts):
                    if grad is not None:
                        grad[r] = part
        _blocks.run_blocks(backward_rows, blocks)
        return grads

    return make_node(out, (query, key, value), backward, "scaled_dot_product_attention")


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True if an array of ``shape`` broadcasts to exactly ``target``."""
    if len(shape) > len(target):
        return False
    return all(a in (1, b) for a, b in zip(shape[::-1], target[::-1]))


def _check_qkv(query: Tensor, key: Tensor, value: Tensor) -> None:
    devices = {query.device, key.device, value.device}
    if len(devices) > 1:
        raise RuntimeError(f"scaled_dot_product_attention: query, key, value are on different devices "
                           f"{query.device}, {key.device}, {value.device}")
    if min(query.ndim, key.ndim, value.ndim) < 2:
        raise ValueError(f"scaled_dot_product_attention: query, key, value need at least 2 dims "
                         f"(..., L, E), got shapes {query.shape}, {key.shape}, {value.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: expected query (..., L, E), key (..., S, E), "
                         f"value (..., S, Ev); got {query.shape}, {key.shape}, {value.shape}")
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(f"scaled_dot_product_attention: query, key, value dtypes differ: "
                        f"{query.dtype}, {key.dtype}, {value.dtype}")
