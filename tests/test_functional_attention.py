"""softmax, log_softmax and scaled_dot_product_attention: values against SciPy and an explicit
loop over queries, gradients against finite differences, the fused attention against the one
composed from Tensor ops."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import softmax as sp_softmax

import autograd.functional as F
from autograd import Tensor, gradcheck
from autograd.backend import to_numpy
from autograd.functional.attention_reference import scaled_dot_product_attention_reference

# ----------------------------------------------------------------------------- softmax


@st.composite
def arrays_and_dim(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(-30, 30)))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return x, dim


@given(arrays_and_dim())
def test_softmax_and_log_softmax_match_scipy(case):
    x, dim = case
    np.testing.assert_allclose(F.softmax(Tensor(x), dim).data, sp_softmax(x, axis=dim), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(F.log_softmax(Tensor(x), dim).data, sp_log_softmax(x, axis=dim),
                               rtol=1e-12, atol=1e-12)


@given(arrays_and_dim())
def test_softmax_and_log_softmax_gradcheck(case):
    x, dim = case
    x = Tensor(x / 10, requires_grad=True)  # moderate logits: finite differences see every entry
    assert gradcheck(lambda t: F.softmax(t, dim), [x])
    assert gradcheck(lambda t: F.log_softmax(t, dim), [x])


def test_softmax_is_stable_and_keeps_float32():
    x = Tensor(np.array([[1000.0, 1001.0, -1000.0], [-5e4, -5e4, -5e4]], np.float32), requires_grad=True)
    y = F.softmax(x, 1)  # a naive exp would overflow (and warnings are errors in autograd/)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, sp_softmax(x.data.astype(np.float64), axis=1), rtol=1e-6)
    ly = F.log_softmax(x, 1)
    assert ly.dtype == np.float32
    np.testing.assert_allclose(ly.data, sp_log_softmax(x.data.astype(np.float64), axis=1), rtol=1e-6, atol=1e-5)
    (y.sum() + ly.sum()).backward()
    assert x.grad.dtype == np.float32 and np.isfinite(x.grad).all()


def test_a_row_of_all_minus_inf_gets_zero_probability_and_zero_gradient():
    x = Tensor(np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]]), requires_grad=True)
    y = F.softmax(x, -1)
    np.testing.assert_array_equal(y.data[1], 0.0)
    np.testing.assert_allclose(y.data[0], sp_softmax([0.0, -np.inf, 1.0]))
    y.backward(np.ones((2, 3)) * np.arange(3))
    np.testing.assert_array_equal(x.grad[1], 0.0)
    assert x.grad[0, 1] == 0.0
    np.testing.assert_array_equal(F.log_softmax(x, -1).data[1], -np.inf)  # log 0, and no 0/0 warning


# ----------------------------------------------------------------------------- attention


def attention_loop(q, k, v, mask=None, scale=None):
    """One (batch, query) at a time: o_i = sum_j softmax_j(q_i . k_j * scale + mask_ij) v_j.
    ``mask`` is additive (float64, -inf = masked); all inputs already broadcast to full shapes."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    out = np.zeros(q.shape[:-1] + (v.shape[-1],))
    for b in np.ndindex(*q.shape[:-2]):
        for i in range(q.shape[-2]):
            scores = np.array([q[b][i] @ k[b][j] * scale for j in range(k.shape[-2])])
            if mask is not None:
                scores = scores + mask[b][i]
            if np.isneginf(scores).all():
                continue  # fully masked query: zero output
            p = sp_softmax(scores)
            out[b][i] = sum(p[j] * v[b][j] for j in range(k.shape[-2]))
    return out


@st.composite
def attention_cases(draw):
    """q, k, v (float64 Tensors, requiring grad) with broadcastable batch dims, a mask spec, a scale."""
    L, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    E, Ev = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))

    def squash(shape):  # some batch dims of size 1, to exercise broadcasting
        return tuple(1 if draw(st.booleans()) else n for n in shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q = Tensor(rng.standard_normal(squash(batch) + (L, E)), requires_grad=True)
    k = Tensor(rng.standard_normal(squash(batch) + (S, E)), requires_grad=True)
    v = Tensor(rng.standard_normal(squash(batch) + (S, Ev)), requires_grad=True)
    kind = draw(st.sampled_from(["none", "bool", "float", "causal"]))
    mask_shape = draw(st.sampled_from([(L, S), (1, S), squash(batch) + (L, S)]))
    mask = None
    if kind == "bool":
        mask = rng.random(mask_shape) < 0.7
    elif kind == "float":
        mask = Tensor(rng.standard_normal(mask_shape), requires_grad=draw(st.booleans()))
    scale = draw(st.sampled_from([None, 0.3]))
    return q, k, v, kind, mask, scale


def _full_mask(kind, mask, q, k):
    """The additive float64 mask broadcast to the scores' shape, for the loop reference."""
    L, S = q.shape[-2], k.shape[-2]
    if kind == "none":
        return None
    if kind == "causal":
        m = np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf)
    elif kind == "bool":
        m = np.where(mask, 0.0, -np.inf)
    else:
        m = mask.data
    return m


def _broadcast_all(q, k, v, m):
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                                () if m is None else m.shape[:-2])
    L, S = q.shape[-2], k.shape[-2]
    bq = np.broadcast_to(q, batch + q.shape[-2:])
    bk = np.broadcast_to(k, batch + k.shape[-2:])
    bv = np.broadcast_to(v, batch + v.shape[-2:])
    bm = None if m is None else np.broadcast_to(m, batch + (L, S))
    return bq, bk, bv, bm


def _sdpa_kwargs(kind, mask, scale):
    return dict(attn_mask=mask if kind in ("bool", "float") else None, is_causal=kind == "causal", scale=scale)


@given(attention_cases())
def test_attention_matches_loop_over_queries(case):
    q, k, v, kind, mask, scale = case
    out = F.scaled_dot_product_attention(q, k, v, **_sdpa_kwargs(kind, mask, scale))
    expected = attention_loop(*_broadcast_all(q.data, k.data, v.data, _full_mask(kind, mask, q, k)), scale=scale)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)


@given(attention_cases())
def test_attention_gradcheck(case):
    q, k, v, kind, mask, scale = case
    kwargs = _sdpa_kwargs(kind, mask, scale)
    if isinstance(mask, Tensor) and mask.requires_grad:
        assert gradcheck(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, **{**kwargs, "attn_mask": m}),
                         [q, k, v, mask])
    else:
        assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs), [q, k, v])


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal"])
def test_fused_attention_agrees_with_reference(dtype, tol, kind):
    rng = np.random.default_rng(0)
    B, H, L, S, E, Ev = 2, 3, 6, 7, 4, 5
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((B, H, L, E), (B, 1, S, E), (B, H, S, Ev))]
    mask = {"none": None, "causal": None, "bool": rng.random((L, S)) < 0.6,
            "float": rng.standard_normal((H, L, S)).astype(dtype)}[kind]
    g = rng.standard_normal((B, H, L, Ev)).astype(dtype)
    results = []
    for fn in (F.scaled_dot_product_attention, scaled_dot_product_attention_reference):
        q, k, v = (Tensor(a.copy(), requires_grad=True) for a in arrays)
        m = Tensor(mask.copy(), requires_grad=True) if kind == "float" else mask
        y = fn(q, k, v, attn_mask=m, is_causal=kind == "causal")
        y.backward(g)
        results.append([y.data, q.grad, k.grad, v.grad] + ([m.grad] if kind == "float" else []))
    for a, b in zip(*results):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("threads", [2, 3])
@given(shape=st.tuples(st.integers(2, 5), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4),
                       st.integers(1, 3), st.integers(1, 3)),
       scale=st.sampled_from([None, 0.3]), frozen=st.sampled_from(["none", "query", "key", "value"]),
       seed=st.integers(0, 2**32 - 1))
def test_attention_split_by_batch_agrees_with_reference(threads, shape, scale, frozen, seed):
    """Without a mask and with equal leading dims, attention runs a slice of the batch axis per
    thread: forced on every size, values and gradients match the composed reference."""
    import sys
    from autograd.ops import _blocks
    attention = sys.modules["autograd.functional.attention"]
    B, H, L, S, E, Ev = shape
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in ((B, H, L, E), (B, H, S, E), (B, H, S, Ev))]
    g = rng.standard_normal((B, H, L, Ev))
    results = []
    for fn in (F.scaled_dot_product_attention, scaled_dot_product_attention_reference):
        tensors = [Tensor(a.copy(), requires_grad=name != frozen)
                   for a, name in zip(arrays, ("query", "key", "value"))]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(attention, "_SPLIT_BYTES", 0)
            mp.setattr(_blocks, "num_threads", lambda: threads)
            y = fn(*tensors, scale=scale)
            y.backward(g)
        results.append([y.data] + [t.grad for t in tensors])
    for a, b in zip(*results):
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_attention_errors():
    q = Tensor(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(NotImplementedError, match="dropout_p"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=0.1)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\), \(2, 3, 5\)"):
        F.scaled_dot_product_attention(q, Tensor(np.zeros((2, 3, 5), np.float32)), q)
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 3\)"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((2, 3), bool))


def test_same_values_and_grads_on_every_backend(xp):
    """On CuPy (where a GPU exists) the ops give what they give on NumPy, and stay on the device."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 5, 4), (2, 6, 4), (2, 6, 3), (2, 5, 3))]
    mask = rng.random((5, 6)) < 0.7
    results = []
    for mod in (np, xp):
        q, k, v = (Tensor(mod.asarray(a), requires_grad=True) for a in arrays[:3])
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mod.asarray(mask))
        y = y + F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = F.log_softmax(y, 1) + F.softmax(y, 2)
        y.backward(mod.asarray(arrays[3]))
        assert type(y.data) is type(q.grad) is type(q.data)
        results.append([to_numpy(a) for a in (y.data, q.grad, k.grad, v.grad)])
    for a, e in zip(*results):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
