"""group_norm, group_norm_silu and layer_norm: values against loop formulas in NumPy, gradients
against finite differences, and the fused ops against the plainly composed references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit

import autograd.functional as F
from autograd import Tensor, gradcheck
from autograd.backend import to_numpy
from autograd.functional.norm import group_norm_silu
from autograd.functional.norm_reference import group_norm_reference


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def group_norm_loop(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Float64, one (sample, group) block at a time, straight from the definition."""
    x = np.asarray(x, dtype=np.float64)
    n, c = x.shape[:2]
    size = c // num_groups
    out = np.empty_like(x)
    for i in range(n):
        for grp in range(num_groups):
            block = x[i, grp * size:(grp + 1) * size]
            out[i, grp * size:(grp + 1) * size] = (block - block.mean()) / np.sqrt(block.var() + eps)
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * np.asarray(weight, np.float64).reshape(per_channel)
    if bias is not None:
        out = out + np.asarray(bias, np.float64).reshape(per_channel)
    return out


@st.composite
def group_norm_cases(draw, max_spatial_dims=2):
    """(x, num_groups, weight, bias, eps) as float64 Tensors requiring grad (weight/bias maybe None)."""
    n = draw(st.integers(1, 3))
    c = draw(st.sampled_from([1, 2, 3, 4, 6]))
    num_groups = draw(st.sampled_from(divisors(c)))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=max_spatial_dims)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offset = draw(st.sampled_from([0.0, 3.0, -20.0]))
    scale = draw(st.sampled_from([0.5, 1.0, 4.0]))
    x = Tensor(offset + scale * rng.standard_normal((n, c) + spatial), requires_grad=True)
    weight = Tensor(rng.standard_normal(c) + 1, requires_grad=True) if draw(st.booleans()) else None
    bias = Tensor(rng.standard_normal(c), requires_grad=True) if draw(st.booleans()) else None
    # eps=1e-5 with blocks of one or two values makes 1/std huge and finite differences useless.
    eps = 1e-5 if (c // num_groups) * int(np.prod(spatial)) > 2 else 0.1
    return x, num_groups, weight, bias, eps


def _inputs(case):
    x, num_groups, weight, bias, eps = case
    return [t for t in (x, weight, bias) if t is not None]


def _call(fn, case):
    """fn(x, num_groups, weight, bias, eps) as a function of the Tensors only, for gradcheck."""
    x, num_groups, weight, bias, eps = case

    def f(*tensors):
        it = iter(tensors)
        xt = next(it)
        w = next(it) if weight is not None else None
        b = next(it) if bias is not None else None
        return fn(xt, num_groups, w, b, eps)
    return f


# ----------------------------------------------------------------------------- group_norm values

@given(group_norm_cases())
def test_group_norm_matches_loop_formula(case):
    x, num_groups, weight, bias, eps = case
    y = F.group_norm(x, num_groups, weight, bias, eps)
    expected = group_norm_loop(x.data, num_groups, None if weight is None else weight.data,
                               None if bias is None else bias.data, eps)
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-10)


def test_group_norm_float32_stays_float32_and_is_accurate_far_from_zero():
    rng = np.random.default_rng(0)
    # mean 300, std 1: a one-pass E[x^2] - E[x]^2 in float32 would lose the variance entirely.
    x = (300 + rng.standard_normal((2, 8, 5, 5))).astype(np.float32)
    w = rng.standard_normal(8).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    y = F.group_norm(xt, 4, wt, bt)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, group_norm_loop(x, 4, w, b), rtol=1e-3, atol=1e-3)
    y.backward(np.ones_like(y.data))
    assert xt.grad.dtype == wt.grad.dtype == bt.grad.dtype == np.float32


def test_group_norm_on_channels_last_memory_matches_contiguous():
    """An NCHW view of NHWC memory (as a convolution may return) gives the same values and grads."""
    rng = np.random.default_rng(1)
    nhwc = rng.standard_normal((2, 5, 3, 8)).astype(np.float32)
    g = rng.standard_normal((2, 8, 5, 3)).astype(np.float32)
    results = []
    for data in (nhwc.transpose(0, 3, 1, 2), np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))):
        x = Tensor(data, requires_grad=True)
        w, b = Tensor(np.linspace(0.5, 2, 8, dtype=np.float32), requires_grad=True), \
            Tensor(np.linspace(-1, 1, 8, dtype=np.float32), requires_grad=True)
        y = group_norm_silu(x, 4, w, b)
        y.backward(g)
        results.append((y.data, x.grad, w.grad, b.grad))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- group_norm gradients

@given(group_norm_cases())
def test_group_norm_gradcheck(case):
    assert gradcheck(_call(F.group_norm, case), _inputs(case))


@given(group_norm_cases())
def test_group_norm_silu_gradcheck(case):
    assert gradcheck(_call(group_norm_silu, case), _inputs(case))


def test_group_norm_grads_of_weight_and_bias_alone():
    """The input needs no grad (e.g. a frozen encoder's features): dgamma, dbeta still flow."""
    rng = np.random.default_rng(2)
    x = Tensor(rng.standard_normal((3, 4, 2, 3)))
    w, b = Tensor(rng.standard_normal(4), requires_grad=True), Tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(lambda w, b: F.group_norm(x, 2, w, b), [w, b])
    assert gradcheck(lambda w, b: group_norm_silu(x, 2, w, b), [w, b])


# ----------------------------------------------------------------------------- fast vs reference

def _value_and_grads(fn, x, w, b, g):
    tensors = [Tensor(a.copy(), requires_grad=True) if a is not None else None for a in (x, w, b)]
    y = fn(*tensors)
    y.backward(g)
    return [y.data] + [t.grad for t in tensors if t is not None]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,num_groups", [((2, 6, 4, 5), 3), ((1, 8, 3), 8), ((3, 4), 1), ((2, 32, 4, 4), 32)])
def test_fast_group_norm_and_fusion_agree_with_references(dtype, tol, affine, shape, num_groups):
    rng = np.random.default_rng(3)
    c = shape[1]
    x = (1.5 + 2 * rng.standard_normal(shape)).astype(dtype)
    w = (1 + rng.standard_normal(c)).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    g = rng.standard_normal(shape).astype(dtype)

    def gn(*t):
        return F.group_norm(t[0], num_groups, *t[1:])

    def gn_ref(*t):
        return group_norm_reference(t[0], num_groups, *t[1:])

    def gns(*t):
        return group_norm_silu(t[0], num_groups, *t[1:])

    def gns_composed(*t):
        return F.silu(group_norm_reference(t[0], num_groups, *t[1:]))

    for fast, ref in ((gn, gn_ref), (gns, gns_composed)):
        got, want = _value_and_grads(fast, x, w, b, g), _value_and_grads(ref, x, w, b, g)
        for a, e in zip(got, want):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, e, rtol=tol, atol=tol)



@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("samples_per_block", [1, 2])
@given(case=group_norm_cases(), silu=st.booleans())
def test_blocks_of_samples_agree_with_references(case, silu, samples_per_block, threads):
    """The fast ops normalise a few samples at a time (a cache-sized block), the blocks shared
    among threads: with blocks of one or two samples, a short last block, on one thread or
    two, values and all gradients match the references."""
    from autograd.ops import _blocks
    from autograd.functional import norm as norm_module
    x, num_groups, weight, bias, eps = case
    fast = group_norm_silu if silu else F.group_norm
    ref = (lambda *a: F.silu(group_norm_reference(*a))) if silu else group_norm_reference
    g = np.random.default_rng(5).standard_normal(x.shape)
    results = []
    for fn in (fast, ref):
        tensors = [None if t is None else Tensor(t.data.copy(), requires_grad=True) for t in (x, weight, bias)]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(norm_module, "_BLOCK_BYTES", samples_per_block * x.data[:1].nbytes)
            mp.setattr(_blocks, "num_threads", lambda: threads)
            y = fn(tensors[0], num_groups, tensors[1], tensors[2], eps)
            y.backward(g)
        results.append([y.data] + [t.grad for t in tensors if t is not None])
    for a, e in zip(*results):
        np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(e).max()))



@pytest.mark.parametrize("threads", [1, 2])
@given(case=group_norm_cases())
def test_group_norm_silu_without_grad_keeps_no_logistic_and_gives_the_same_values(case, threads):
    """Under no_grad (sampling) the fused op skips storing s(z) for a backward: same values."""
    from autograd import no_grad
    from autograd.ops import _blocks
    from autograd.functional import norm as norm_module
    x, num_groups, weight, bias, eps = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(norm_module, "_BLOCK_BYTES", x.data[:1].nbytes)
        mp.setattr(_blocks, "num_threads", lambda: threads)
        with_grad = group_norm_silu(x, num_groups, weight, bias, eps).data
        with no_grad():
            without = group_norm_silu(x, num_groups, weight, bias, eps)
    assert not without.requires_grad
    np.testing.assert_array_equal(without.data, with_grad)

def test_group_norm_silu_equals_silu_of_group_norm():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 3, 3))
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    z = group_norm_loop(x, 3, w, b)
    y = group_norm_silu(Tensor(x), 3, Tensor(w), Tensor(b))
    np.testing.assert_allclose(y.data, z * expit(z), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- errors

def test_group_norm_rejects_channels_not_divisible_by_groups():
    x = Tensor(np.zeros((2, 6, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"C=6 must be divisible by num_groups=4.*\[1, 2, 3, 6\]"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match="divisible"):
        group_norm_silu(x, 0)


def test_group_norm_rejects_bad_affine_shapes_and_inputs():
    x = Tensor(np.zeros((2, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(6,\).*\(3,\)"):
        F.group_norm(x, 3, Tensor(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match=r"\(N, C, \*\)"):
        F.group_norm(Tensor(np.zeros(6, np.float32)), 3)


# ----------------------------------------------------------------------------- layer_norm

def layer_norm_formula(x, k, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)


@st.composite
def layer_norm_cases(draw):
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    normalized = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    if int(np.prod(normalized)) < 3:
        normalized = normalized[:-1] + (normalized[-1] + 2,)  # finite differences need a real spread
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = Tensor(draw(st.sampled_from([0.0, 5.0])) + rng.standard_normal(lead + normalized), requires_grad=True)
    weight = Tensor(1 + rng.standard_normal(normalized), requires_grad=True) if draw(st.booleans()) else None
    bias = Tensor(rng.standard_normal(normalized), requires_grad=True) if draw(st.booleans()) else None
    as_int = len(normalized) == 1 and draw(st.booleans())
    return x, (normalized[0] if as_int else normalized), weight, bias


@given(layer_norm_cases())
def test_layer_norm_values_and_gradcheck(case):
    x, normalized, weight, bias = case
    k = 1 if isinstance(normalized, int) else len(normalized)
    y = F.layer_norm(x, normalized, weight, bias)
    expected = layer_norm_formula(x.data, k, None if weight is None else weight.data,
                                  None if bias is None else bias.data)
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-10)
    tensors = [t for t in (x, weight, bias) if t is not None]

    def f(*ts):
        it = iter(ts)
        xt = next(it)
        return F.layer_norm(xt, normalized, next(it) if weight is not None else None,
                            next(it) if bias is not None else None)
    assert gradcheck(f, tensors)


def test_layer_norm_float32_and_errors():
    x = Tensor(np.random.default_rng(5).standard_normal((4, 3, 5)).astype(np.float32), requires_grad=True)
    w = Tensor(np.ones(5, np.float32), requires_grad=True)
    y = F.layer_norm(x, (5,), w)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == np.float32
    with pytest.raises(ValueError, match=r"does not end in normalized_shape \(3,\)"):
        F.layer_norm(x, 3)
    with pytest.raises(ValueError, match="weight must have normalized_shape"):
        F.layer_norm(x, 5, Tensor(np.ones(3, np.float32)))


# ----------------------------------------------------------------------------- backends

def test_same_values_and_grads_on_every_backend(xp):
    """On CuPy (where a GPU exists) the ops give what they give on NumPy, and stay on the device."""
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal((2, 8, 3, 4)).astype(np.float32), rng.standard_normal(8).astype(np.float32),
              rng.standard_normal(8).astype(np.float32), rng.standard_normal((2, 8, 3, 4)).astype(np.float32)]
    cases = [lambda x, w, b: F.group_norm(x, 4, w, b), lambda x, w, b: group_norm_silu(x, 2, w, b),
             lambda x, w, b: F.layer_norm(x.transpose(1, 3), 8, w, b).transpose(1, 3)]
    for fn in cases:
        results = []
        for mod in (np, xp):
            x, w, b = (Tensor(mod.asarray(a), requires_grad=True) for a in arrays[:3])
            y = fn(x, w, b)
            y.backward(mod.asarray(arrays[3]))
            assert type(y.data) is type(x.grad) is type(x.data)
            results.append([to_numpy(a) for a in (y.data, x.grad, w.grad, b.grad)])
        for a, e in zip(*results):
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
