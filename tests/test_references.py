"""Every op with a fast path against its plain reference (autograd/functional/*_reference.py):
values and every gradient agree on hypothesis-drawn shapes, with the fast path forced through
its blocks and threads (block and split sizes shrunk to a few bytes, 1-2 threads); and each
reference's hand-written backward passes gradcheck (finite differences).

The references share no code with the fast paths beyond argument checks: silu's logistic is
1/(1 + exp(-x)) rather than tanh, group norm reduces (N, G, M) blocks rather than per-channel
sums, attention scales the scores rather than Q, conv2d loops over kernel taps rather than
im2col, and dropout draws its mask in one call rather than per thread from advanced copies.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autograd.functional as F
from autograd import Tensor, gradcheck
from autograd.functional.activation_reference import silu_reference
from autograd.functional.attention_reference import scaled_dot_product_attention_reference
from autograd.functional.conv_reference import conv2d_reference
from autograd.functional.linear_reference import dropout_reference, linear_silu_reference, mlp_silu_reference
from autograd.functional.norm_reference import group_norm_reference, group_norm_silu_reference
from autograd.ops import _blocks

# The modules (F's names shadow some of them: F.linear is the function).
activation, attention, conv, linear, norm = (importlib.import_module(f"autograd.functional.{name}")
                                             for name in ("activation", "attention", "conv", "linear", "norm"))


def values_and_grads(fn: Callable[..., Tensor], arrays: list[Any], grad: list[bool] | None = None
                     ) -> tuple[Any, list[Any]]:
    """fn(*tensors).data and the gradients of sum(out * cos(k)) (a fixed, non-uniform g)."""
    grad = [True] * len(arrays) if grad is None else grad
    ts = [Tensor(a.copy(), requires_grad=r) for a, r in zip(arrays, grad)]
    out = fn(*ts)
    if out.requires_grad:
        out.backward(np.cos(np.arange(out.size)).reshape(out.shape).astype(out.dtype))
    return out.data, [t.grad for t in ts]


def assert_same(fast: tuple[Any, list[Any]], ref: tuple[Any, list[Any]], rtol: float = 1e-9,
                atol: float = 1e-11) -> None:
    np.testing.assert_allclose(fast[0], ref[0], rtol=rtol, atol=atol)
    assert fast[0].shape == ref[0].shape and fast[0].dtype == ref[0].dtype
    for gf, gr in zip(fast[1], ref[1]):
        assert (gf is None) == (gr is None)
        if gf is not None:
            np.testing.assert_allclose(gf, gr, rtol=rtol, atol=atol)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def blocks_forced(request):
    """The fast paths cut even tiny arrays into blocks and share them among the threads. (The
    same for every example hypothesis draws: a setting, not state that an example could change.)"""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_blocks, "num_threads", lambda: request.param)
        mp.setattr(activation, "_SPLIT_BYTES", 0)
        mp.setattr(linear, "_SPLIT_BYTES", 0)
        mp.setattr(linear, "_MIN_ROWS", 1)
        mp.setattr(linear, "_MIN_MACS", 0)
        mp.setattr(norm, "_BLOCK_BYTES", 1)
        mp.setattr(conv, "_BLOCK_BYTES", 1)
        mp.setattr(attention, "_SPLIT_BYTES", 0)
        yield request.param


# Allows the blocks_forced fixture (see its docstring) under @given.
with_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def arrays(draw: Any, shape: tuple[int, ...], low: float = -3.0, high: float = 3.0) -> Any:
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).uniform(low, high, shape)


def channels_last(a: Any) -> Any:
    """The same values as an NCHW view of NHWC memory, as a convolution hands them on."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# ----------------------------------------------------------------------------- silu, linear_silu
@with_fixture
@given(data=st.data(), shape=st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple))
def test_silu_matches_reference(blocks_forced, data, shape):
    x = arrays(data.draw, shape, -20, 20)
    assert_same(values_and_grads(F.silu, [x]), values_and_grads(silu_reference, [x]), rtol=1e-12)


@with_fixture
@given(data=st.data(), lead=st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple),
       n_in=st.integers(1, 5), n_out=st.integers(1, 5), has_bias=st.booleans(),
       frozen=st.sampled_from(["none", "input", "weight"]))
def test_linear_silu_matches_reference(blocks_forced, data, lead, n_in, n_out, has_bias, frozen):
    a = [arrays(data.draw, lead + (n_in,)), arrays(data.draw, (n_out, n_in))]
    a += [arrays(data.draw, (n_out,))] if has_bias else []
    grad = [frozen != "input", frozen != "weight"] + [True] * has_bias
    assert_same(values_and_grads(F.linear_silu, a, grad), values_and_grads(linear_silu_reference, a, grad))


def stack_of(op: Callable[..., Tensor], n: int, has_bias: list[bool]) -> Callable[..., Tensor]:
    """op(x, weights, biases) as a function of the tensors (x, W_1..W_n, then the biases given)."""
    def fn(x: Tensor, *params: Tensor) -> Tensor:
        more = iter(params[n:])
        return op(x, list(params[:n]), [next(more) if b else None for b in has_bias])
    return fn


@with_fixture
@given(data=st.data(), lead=st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple),
       widths=st.lists(st.integers(1, 5), min_size=2, max_size=5), has_bias=st.lists(st.booleans(), min_size=4),
       frozen=st.integers(-1, 4))
def test_mlp_silu_matches_reference(blocks_forced, data, lead, widths, has_bias, frozen):
    """Every layer's weight and bias gradient, and the input's, with one tensor (input, a
    weight or, -1, none) frozen: a frozen weight must not stop the gradient below it."""
    n = len(widths) - 1
    has_bias = has_bias[:n]
    a = [arrays(data.draw, lead + (widths[0],))]
    a += [arrays(data.draw, (widths[i + 1], widths[i])) for i in range(n)]
    a += [arrays(data.draw, (widths[i + 1],)) for i in range(n) if has_bias[i]]
    grad = [i != frozen for i in range(len(a))]
    assert_same(values_and_grads(stack_of(F.mlp_silu, n, has_bias), a, grad),
                values_and_grads(stack_of(mlp_silu_reference, n, has_bias), a, grad))


# ----------------------------------------------------------------------------- dropout
@with_fixture
@given(data=st.data(), shape=st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple),
       p=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), nhwc=st.booleans(), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_dropout_matches_reference_mask_for_mask(blocks_forced, data, shape, p, nhwc, seed, dtype):
    """The same generator state gives the same mask, values and gradient bit for bit, whatever
    the layout (a channels-last map draws in memory order), and leaves the generator in the
    same state."""
    x = arrays(data.draw, shape).astype(dtype)
    if nhwc and x.ndim == 4:
        x = channels_last(x)
    results, states = [], []
    for op in (F.dropout, dropout_reference):
        rng = np.random.default_rng(seed)
        t = Tensor(x, requires_grad=True)
        y = op(t, p, generator=rng)
        g = np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype)
        y.backward(g)
        results.append((y.data, t.grad))
        states.append(rng.bit_generator.state)
    for fast, ref in zip(*results):
        assert fast.dtype == ref.dtype
        np.testing.assert_array_equal(fast, ref)
    assert states[0] == states[1]


# ----------------------------------------------------------------------------- group norm (+ SiLU)
group_norm_cases = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
                             st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple))


@pytest.mark.parametrize("silu", [False, True], ids=["group_norm", "group_norm_silu"])
@with_fixture
@given(data=st.data(), case=group_norm_cases, affine=st.booleans(), nhwc=st.booleans())
def test_group_norm_matches_reference(blocks_forced, silu, data, case, affine, nhwc):
    n, groups, per_group, spatial = case
    c = groups * per_group
    x = arrays(data.draw, (n, c) + spatial) * arrays(data.draw, (1, c) + (1,) * len(spatial), 0.1, 3)
    if nhwc and x.ndim == 4:
        x = channels_last(x)
    a = [x] + ([arrays(data.draw, (c,)), arrays(data.draw, (c,))] if affine else [])
    fast, ref = (norm.group_norm_silu, group_norm_silu_reference) if silu else (F.group_norm, group_norm_reference)
    assert_same(values_and_grads(lambda *t: fast(t[0], groups, *t[1:]), a),
                values_and_grads(lambda *t: ref(t[0], groups, *t[1:]), a), rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- conv2d
@st.composite
def conv_problems(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1)))
    hw = tuple(draw(st.integers(max(1, k[d] - 2 * padding[d]), 6)) for d in range(2))
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return dict(x=(n, c) + hw, w=(o, c) + k, stride=stride, padding=padding, bias=draw(st.booleans()))


@with_fixture
@given(data=st.data(), problem=conv_problems(), nhwc=st.booleans())
def test_conv2d_matches_reference(blocks_forced, data, problem, nhwc):
    x = arrays(data.draw, problem["x"])
    a = [channels_last(x) if nhwc else x, arrays(data.draw, problem["w"])]
    a += [arrays(data.draw, problem["w"][:1])] if problem["bias"] else []
    kw = dict(stride=problem["stride"], padding=problem["padding"])
    assert_same(values_and_grads(lambda *t: F.conv2d(*t, **kw), a),
                values_and_grads(lambda *t: conv2d_reference(*t, **kw), a))


# ----------------------------------------------------------------------------- attention
@with_fixture
@given(data=st.data(), lead=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
       L=st.integers(1, 5), S=st.integers(1, 5), E=st.integers(1, 4), Ev=st.integers(1, 4),
       mask=st.sampled_from(["none", "causal", "bool", "float"]), broadcast_kv=st.booleans())
def test_attention_matches_reference(blocks_forced, data, lead, L, S, E, Ev, mask, broadcast_kv):
    kv_lead = tuple(1 for _ in lead) if broadcast_kv else lead
    a = [arrays(data.draw, lead + (L, E)), arrays(data.draw, kv_lead + (S, E)), arrays(data.draw, kv_lead + (S, Ev))]
    kw: dict[str, Any] = {"is_causal": mask == "causal"}
    if mask == "bool":
        allowed = np.random.default_rng(data.draw(st.integers(0, 99))).random((L, S)) < 0.7
        allowed[:, 0] = data.draw(st.booleans())  # sometimes a query that sees no key at all
        kw["attn_mask"] = Tensor(allowed)
    if mask == "float":  # a learned bias: its gradient is dS, summed over the batch
        a.append(arrays(data.draw, (L, S)))

    def call(fn):
        return lambda q, k, v, *m: fn(q, k, v, *m, **kw)
    assert_same(values_and_grads(call(F.scaled_dot_product_attention), a),
                values_and_grads(call(scaled_dot_product_attention_reference), a))


# ----------------------------------------------------------------------------- the references' own backward
@settings(max_examples=8)
@given(data=st.data())
def test_references_pass_gradcheck(data):
    """Each hand-written backward against central finite differences (float64, small shapes)."""
    draw = data.draw
    x4 = arrays(draw, (2, 4, 3, 2))
    cases = [
        (silu_reference, [arrays(draw, (3, 4), -6, 6)]),
        (linear_silu_reference, [arrays(draw, (2, 3, 4)), arrays(draw, (5, 4)), arrays(draw, (5,))]),
        (stack_of(mlp_silu_reference, 2, [True, False]),
         [arrays(draw, (2, 3, 4)), arrays(draw, (5, 4)), arrays(draw, (3, 5)), arrays(draw, (5,))]),
        (lambda t: dropout_reference(t, 0.4, generator=np.random.default_rng(1)), [arrays(draw, (3, 5))]),
        (lambda *t: group_norm_reference(t[0], 2, *t[1:]), [x4, arrays(draw, (4,)), arrays(draw, (4,))]),
        (lambda *t: group_norm_silu_reference(t[0], 2, *t[1:]), [x4, arrays(draw, (4,)), arrays(draw, (4,))]),
        (lambda x, w, b: conv2d_reference(x, w, b, stride=2, padding=1),
         [arrays(draw, (2, 2, 5, 4)), arrays(draw, (3, 2, 3, 2)), arrays(draw, (3,))]),
        (lambda q, k, v, m: scaled_dot_product_attention_reference(q, k, v, m),
         [arrays(draw, (2, 3, 4)), arrays(draw, (1, 5, 4)), arrays(draw, (2, 5, 2)), arrays(draw, (3, 5))]),
        (lambda q, k, v: scaled_dot_product_attention_reference(q, k, v, is_causal=True),
         [arrays(draw, (2, 4, 3)), arrays(draw, (2, 4, 3)), arrays(draw, (2, 4, 2))]),
    ]
    for fn, inputs in cases:
        assert gradcheck(fn, [Tensor(a, requires_grad=True) for a in inputs]), fn


def test_dropout_reference_edge_cases():
    x = Tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True)
    assert dropout_reference(x, 0.0) is x and dropout_reference(x, 0.5, training=False) is x
    y = dropout_reference(x, 1.0)
    y.backward(np.ones((2, 3)))
    assert not y.data.any() and not x.grad.any()
    with pytest.raises(ValueError, match=r"dropout_reference: probability p must be in \[0, 1\], got 1.5"):
        dropout_reference(x, 1.5)
