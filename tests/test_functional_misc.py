"""Activations, linear, embedding, dropout and the losses: values against independent formulas
(SciPy's erf/expit/logsumexp, einsum, loops), gradients against finite differences, and the
statistics and determinism of dropout."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import erf, expit, logsumexp

import autograd.functional as F
from autograd import Tensor, gradcheck
from autograd.backend import to_numpy
from autograd.random import manual_seed

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def float64_arrays(low=-5.0, high=5.0):
    return shapes.flatmap(lambda s: hnp.arrays(np.float64, s, elements=st.floats(low, high)))


# ----------------------------------------------------------------------------- activations

ACTIVATIONS = {
    "silu": (F.silu, lambda x: x * expit(x)),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2)))),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "sigmoid": (F.sigmoid, expit),
    "tanh": (F.tanh, np.tanh),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(x=float64_arrays())
def test_activation_values(name, x):
    fn, formula = ACTIVATIONS[name]
    np.testing.assert_allclose(fn(Tensor(x)).data, formula(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(x=float64_arrays())
def test_activation_gradcheck(name, x):
    fn, _ = ACTIVATIONS[name]
    if name == "relu":
        x = np.where(np.abs(x) < 1e-3, 0.5, x)  # keep finite differences off the kink
    assert gradcheck(fn, [Tensor(x, requires_grad=True)])



@pytest.mark.parametrize("threads", [1, 2, 3])
@given(x=float64_arrays())
def test_silu_split_by_rows_among_threads(threads, x):
    """silu shares big inputs' rows among threads: forced on every size, on 1-3 threads, value
    and gradient match the formulas (dy/dx = s + x s (1 - s))."""
    import sys
    from autograd.ops import _blocks
    activation = sys.modules["autograd.functional.activation"]
    g = np.cos(np.arange(x.size, dtype=np.float64)).reshape(x.shape)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(activation, "_SPLIT_BYTES", 0)
        mp.setattr(_blocks, "num_threads", lambda: threads)
        t = Tensor(x, requires_grad=True)
        y = F.silu(t)
        y.backward(g)
    s = expit(x)
    np.testing.assert_allclose(y.data, x * s, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(t.grad, g * (s + x * s * (1 - s)), rtol=1e-12, atol=1e-14)

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_keep_float32_and_survive_extremes(name):
    fn, formula = ACTIVATIONS[name]
    x = Tensor(np.array([-200.0, -30.0, -1.0, 0.0, 0.5, 30.0, 200.0], np.float32), requires_grad=True)
    y = fn(x)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == np.float32
    np.testing.assert_allclose(y.data, formula(x.data.astype(np.float64)), rtol=1e-6, atol=1e-6)
    assert np.isfinite(x.grad).all()


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        F.gelu(Tensor([1.0]), approximate="erf")


# ----------------------------------------------------------------------------- linear

@given(lead=st.lists(st.integers(1, 3), max_size=2), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       with_bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear_values_and_gradcheck(lead, n_in, n_out, with_bias, seed):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal(tuple(lead) + (n_in,)), requires_grad=True)
    w = Tensor(rng.standard_normal((n_out, n_in)), requires_grad=True)
    b = Tensor(rng.standard_normal(n_out), requires_grad=True) if with_bias else None
    y = F.linear(x, w, b)
    expected = np.einsum("...i,oi->...o", x.data, w.data) + (b.data if with_bias else 0)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    # linear in each input, so central differences are exact up to rounding: check tightly.
    assert gradcheck(F.linear, [x, w, b] if with_bias else [x, w], atol=1e-8, rtol=1e-6)



@pytest.mark.parametrize("threads", [1, 2, 3])
@given(rows=st.integers(0, 7), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       frozen=st.sampled_from(["none", "input", "weight", "bias"]), seed=st.integers(0, 2**32 - 1))
def test_linear_split_by_rows_among_threads(threads, rows, n_in, n_out, frozen, seed):
    """With many rows, linear shares them among threads (dW and db as per-thread partial
    sums): forced on every row count, on 1-3 threads, it gives the formulas' values and grads."""
    import sys
    from autograd.ops import _blocks
    linear_module = sys.modules["autograd.functional.linear"]  # the module; F.linear is the function
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((rows, n_in)), rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    g = rng.standard_normal((rows, n_out))
    tx, tw, tb = (Tensor(a, requires_grad=name != frozen) for a, name in ((x, "input"), (w, "weight"), (b, "bias")))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(linear_module, "_MIN_ROWS", 1)
        mp.setattr(linear_module, "_MIN_MACS", 0)
        mp.setattr(_blocks, "num_threads", lambda: threads)
        y = F.linear(tx, tw, tb)
        y.backward(g)
    np.testing.assert_allclose(y.data, x @ w.T + b, rtol=1e-12, atol=1e-12)
    for t, expected in ((tx, g @ w), (tw, g.T @ x), (tb, g.sum(axis=0))):
        if t.requires_grad:
            np.testing.assert_allclose(t.grad, expected, rtol=1e-12, atol=1e-12)
        else:
            assert t.grad is None

@pytest.mark.parametrize("threads", [1, 2, 3])
@given(lead=st.lists(st.integers(0, 5), max_size=2), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       frozen=st.sampled_from(["none", "input", "weight", "bias", "no bias"]), seed=st.integers(0, 2**32 - 1))
def test_linear_silu_is_silu_of_linear(threads, lead, n_in, n_out, frozen, seed):
    """The fused op against the formulas written the other way: y = z expit(z) with SciPy's
    logistic, dL/dz = g (s + z s (1 - s)) from z (the op works from y), then linear's rules;
    rows shared among 1-3 threads on every row count."""
    import sys
    from autograd.ops import _blocks
    from autograd.functional.linear import linear_silu
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(lead) + (n_in,)) * 3
    w, b = rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    tx, tw = Tensor(x, requires_grad=frozen != "input"), Tensor(w, requires_grad=frozen != "weight")
    tb = None if frozen == "no bias" else Tensor(b, requires_grad=frozen != "bias")
    z = np.einsum("...i,oi->...o", x, w) + (0 if tb is None else b)
    s = expit(z)
    g = rng.standard_normal(z.shape)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys.modules["autograd.functional.linear"], "_MIN_ROWS", 1)
        mp.setattr(sys.modules["autograd.functional.linear"], "_MIN_MACS", 0)
        mp.setattr(_blocks, "num_threads", lambda: threads)
        y = linear_silu(tx, tw, tb)
        if z.size and (tx.requires_grad or tw.requires_grad or (tb is not None and tb.requires_grad)):
            y.backward(g)
    np.testing.assert_allclose(y.data, z * s, rtol=1e-12, atol=1e-12)
    if not z.size or y._backward is None:
        return
    dz = (g * (s + z * s * (1 - s))).reshape(-1, n_out)
    x2 = x.reshape(-1, n_in)
    for t, expected in ((tx, (dz @ w).reshape(x.shape)), (tw, dz.T @ x2), (tb, dz.sum(axis=0))):
        if t is not None and t.requires_grad:
            np.testing.assert_allclose(t.grad, expected, rtol=1e-10, atol=1e-12)


def test_linear_silu_gradcheck_and_errors():
    from autograd.functional.linear import linear_silu
    rng = np.random.default_rng(4)
    x, w, b = (Tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((3, 4), (2, 4), (2,)))
    assert gradcheck(linear_silu, [x, w, b])
    with pytest.raises(ValueError, match=r"linear_silu: input .*\(3, 4\).*\(2, 5\)"):
        linear_silu(x, Tensor(np.zeros((2, 5))))


def test_linear_keeps_float32_and_skips_frozen_inputs():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((5, 3)).astype(np.float32))
    w = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(2, np.float32))
    y = F.linear(x, w, b)
    y.sum().backward()
    assert y.dtype == w.grad.dtype == np.float32 and x.grad is None
    np.testing.assert_allclose(w.grad, np.tile(x.data.sum(0), (2, 1)), rtol=1e-6)


def test_linear_shape_errors_name_the_shapes():
    x = Tensor(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(2, 5\)"):
        F.linear(x, Tensor(np.zeros((2, 5), np.float32)))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        F.linear(x, Tensor(np.zeros((2, 3), np.float32)), Tensor(np.zeros(3, np.float32)))


# ----------------------------------------------------------------------------- embedding

@given(idx=hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=5), elements=st.integers(0, 3)),
       dim=st.integers(1, 3))
def test_embedding_values_and_repeated_index_gradients(idx, dim):
    rng = np.random.default_rng(0)
    w = Tensor(rng.standard_normal((4, dim)), requires_grad=True)
    y = F.embedding(idx, w)
    assert y.shape == idx.shape + (dim,)
    for pos in np.ndindex(*idx.shape):
        np.testing.assert_array_equal(y.data[pos], w.data[idx[pos]])
    g = rng.standard_normal(y.shape)
    y.backward(g)
    expected = np.zeros((4, dim))
    for pos in np.ndindex(*idx.shape):  # every occurrence of row r adds its gradient to row r
        expected[idx[pos]] += g[pos]
    np.testing.assert_allclose(w.grad, expected, rtol=1e-12, atol=1e-12)
    if idx.size:
        assert gradcheck(lambda w: F.embedding(Tensor(idx), w), [Tensor(w.data, requires_grad=True)])


def test_embedding_errors():
    w = Tensor(np.zeros((3, 2), np.float32))
    with pytest.raises(IndexError, match=r"\[0, 3\).*\[0, 3\]"):
        F.embedding(np.array([0, 3]), w)
    with pytest.raises(IndexError, match=r"\[-1, 1\]"):
        F.embedding(np.array([-1, 1]), w)
    with pytest.raises(TypeError, match="integers"):
        F.embedding(np.array([0.0]), w)


# ----------------------------------------------------------------------------- dropout

def test_dropout_statistics():
    p, n = 0.3, 200_000
    x = Tensor(np.ones(n, np.float32))
    y = F.dropout(x, p, generator=np.random.default_rng(0)).data
    kept = (y != 0).mean()
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)        # Bernoulli(1 - p) mask
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)      # survivors scaled by 1/(1-p)
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)         # so E[y] = x
    assert y.dtype == np.float32


def test_dropout_is_deterministic_given_a_generator_or_the_seed():
    x = Tensor(np.ones((50, 40)))
    a = F.dropout(x, 0.5, generator=np.random.default_rng(7)).data
    b = F.dropout(x, 0.5, generator=np.random.default_rng(7)).data
    np.testing.assert_array_equal(a, b)
    manual_seed(11)
    c = F.dropout(x, 0.5).data
    d = F.dropout(x, 0.5).data
    manual_seed(11)
    np.testing.assert_array_equal(F.dropout(x, 0.5).data, c)
    assert not np.array_equal(c, d)  # the default generator advances


def serial_uint32(bit_generator, n):
    """The definition of dropout's stream: the 32-bit halves of ceil(n/2) raw draws, in order."""
    return bit_generator.random_raw(-(-n // 2)).view(np.uint32)[:n]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("layout", ["C order", "channels-last", "odd rows"])
@pytest.mark.parametrize("bits", [np.random.PCG64, np.random.SFC64])
def test_dropout_gradient_is_the_scaled_mask(bits, layout, threads, monkeypatch):
    """Also with the draw and products shared among threads (forced on a small input): the
    mask is one sequential stream whatever the thread count (rows of odd length start some
    threads half-way through a 64-bit draw), and lines up with a channels-last input."""
    import sys
    from autograd.ops import _blocks
    monkeypatch.setattr(sys.modules["autograd.functional.linear"], "_SPLIT_BYTES", 0)
    monkeypatch.setattr(_blocks, "num_threads", lambda: threads)
    rng = np.random.default_rng(1)
    shape = (7, 3, 3) if layout == "odd rows" else (6, 5, 4, 3)
    data = rng.uniform(1, 2, shape)
    memory_shape = shape
    if layout == "channels-last":  # the mask is drawn in memory order: it must still line up
        data = np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        memory_shape = (6, 4, 3, 5)
    x = Tensor(data, requires_grad=True)
    y = F.dropout(x, 0.25, generator=np.random.Generator(bits(3)))
    u = serial_uint32(bits(3), data.size).reshape(memory_shape)
    drawn_kept = u >= 2**30  # 0.25 * 2^32
    if layout == "channels-last":
        drawn_kept = drawn_kept.transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(y.data != 0, drawn_kept)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    mask = y.data != 0
    np.testing.assert_allclose(x.grad, g * mask / 0.75, rtol=1e-12)
    np.testing.assert_allclose(y.data, x.data * mask / 0.75, rtol=1e-12)


def test_dropout_moves_the_generator_past_its_mask():
    """The next draw after a dropout is the one after its n numbers, as if drawn in one go."""
    rng, reference = np.random.default_rng(5), np.random.default_rng(5)
    F.dropout(Tensor(np.ones((9, 7))), 0.5, generator=rng)
    serial_uint32(reference.bit_generator, 63)
    assert rng.standard_normal() == reference.standard_normal()


def test_dropout_edge_cases():
    x = Tensor(np.ones(10, np.float32), requires_grad=True)
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0.9, training=False) is x
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.data, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 0.0)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"in \[0, 1\]"):
            F.dropout(x, bad)
    scalar = Tensor(np.array(3.0), requires_grad=True)  # 0-d: drawn as one row of one number
    y = F.dropout(scalar, 0.5, generator=np.random.default_rng(0))
    kept = serial_uint32(np.random.PCG64(0), 1)[0] >= 2**31
    assert y.shape == () and y.data == (6.0 if kept else 0.0)
    y.backward()
    assert scalar.grad.shape == () and scalar.grad == (2.0 if kept else 0.0)


# ----------------------------------------------------------------------------- losses

REDUCTIONS = ["mean", "sum", "none"]


@given(x=float64_arrays(), reduction=st.sampled_from(REDUCTIONS), seed=st.integers(0, 2**32 - 1))
def test_mse_loss_values_and_gradcheck(x, reduction, seed):
    t = np.random.default_rng(seed).standard_normal(x.shape)
    sq = (x - t) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    xt, tt = Tensor(x, requires_grad=True), Tensor(t, requires_grad=True)
    np.testing.assert_allclose(F.mse_loss(xt, tt, reduction).data, expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), [xt, tt])


def test_mse_loss_float32_and_errors():
    x = Tensor(np.ones((3, 2), np.float32), requires_grad=True)
    loss = F.mse_loss(x, np.zeros((3, 2), np.float32))
    loss.backward()
    assert loss.dtype == x.grad.dtype == np.float32 and loss.shape == ()
    np.testing.assert_allclose(x.grad, 2 / 6)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 1\)"):
        F.mse_loss(x, np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.mse_loss(x, x, reduction="avg")


def cross_entropy_formula(logits, target):
    """Per-sample -log softmax(x)[t] = logsumexp(x) - x[t], classes on axis 1."""
    lse = logsumexp(logits, axis=1)
    picked = np.take_along_axis(logits, np.expand_dims(target, 1), axis=1).squeeze(1)
    return lse - picked


@given(n=st.integers(1, 4), c=st.integers(1, 5), extra=st.lists(st.integers(1, 3), max_size=1),
       reduction=st.sampled_from(REDUCTIONS), shift=st.sampled_from([0.0, 1e4]), seed=st.integers(0, 2**32 - 1))
def test_cross_entropy_values_and_gradcheck(n, c, extra, reduction, shift, seed):
    rng = np.random.default_rng(seed)
    logits = shift + rng.standard_normal((n, c) + tuple(extra))
    target = rng.integers(0, c, (n,) + tuple(extra))
    per_sample = cross_entropy_formula(logits, target)
    expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    x = Tensor(logits, requires_grad=True)
    np.testing.assert_allclose(F.cross_entropy(x, target, reduction).data, expected, rtol=1e-9, atol=1e-9)
    assert gradcheck(lambda t: F.cross_entropy(t, target, reduction=reduction), [x])


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    x = Tensor(np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]], np.float32), requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 2]))
    loss.backward()
    p = np.exp(x.data - logsumexp(x.data.astype(np.float64), axis=1, keepdims=True))
    onehot = np.eye(3)[[0, 2]]
    assert loss.dtype == x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, (p - onehot) / 2, rtol=1e-6, atol=1e-7)


def test_cross_entropy_errors():
    x = Tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(IndexError, match=r"\[0, 3\) for 3 classes; got values in \[0, 3\]"):
        F.cross_entropy(x, np.array([0, 3]))
    with pytest.raises(IndexError, match=r"\[-1, 1\]"):
        F.cross_entropy(x, np.array([-1, 1]))
    with pytest.raises(ValueError, match=r"targets of shape \(2,\), got \(3,\)"):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(x, np.array([0, 1]), reduction="batchmean")


# ----------------------------------------------------------------------------- backends

def test_same_values_and_grads_on_every_backend(xp):
    """On CuPy (where a GPU exists) the ops give what they give on NumPy, and stay on the device."""
    rng = np.random.default_rng(2)
    x0, w0, b0 = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (5, 3), (5,)))
    e0 = rng.standard_normal((6, 5)).astype(np.float32)
    idx, target = np.array([[0, 5, 5]]), np.array([0, 4, 4, 1])
    results = []
    for mod in (np, xp):
        x, w, b, e = (Tensor(mod.asarray(a), requires_grad=True) for a in (x0, w0, b0, e0))
        h = F.linear(x, w, b)
        h = F.silu(h) + F.gelu(h) + F.gelu(h, approximate="tanh") + F.embedding(mod.asarray(idx), e).sum(1)
        ce, mse = F.cross_entropy(h, mod.asarray(target)), F.mse_loss(h, mod.zeros_like(h.data))
        loss = ce + mse + F.dropout(h, 0.5, generator=mod.random.default_rng(0)).sum() * 0
        loss.backward()
        assert type(ce.data) is type(mse.data) is type(h.data) is type(x.grad) is type(x.data)
        results.append([to_numpy(a) for a in (loss.data, x.grad, w.grad, b.grad, e.grad)])
    for a, want in zip(*results):
        np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2, 3])
@given(rows=st.integers(0, 7), widths=st.lists(st.integers(1, 4), min_size=2, max_size=4),
       frozen=st.sampled_from(["none", "input", "first weight", "biases"]), seed=st.integers(0, 2**32 - 1))
def test_mlp_silu_is_an_iterated_linear_silu(threads, rows, widths, frozen, seed):
    """The stack against its definition, linear_silu applied layer after layer (each its own
    op and backward), rows shared among 1-3 threads on every row count; under no_grad the
    values are the same and nothing is recorded."""
    import sys
    from autograd.ops import _blocks
    from autograd.functional.linear import linear_silu, mlp_silu
    from autograd.tensor import no_grad
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((rows, widths[0]))]
    arrays += [rng.standard_normal((b, a)) for a, b in zip(widths[:-1], widths[1:])]
    arrays += [rng.standard_normal(b) for b in widths[1:]]
    n = len(widths) - 1
    g = rng.standard_normal((rows, widths[-1]))

    def run(stacked: bool) -> tuple[Any, list[Any]]:
        ts = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        ts[0].requires_grad = frozen != "input"
        ts[1].requires_grad = frozen != "first weight"
        for t in ts[1 + n:]:
            t.requires_grad = frozen != "biases"
        x, ws, bs = ts[0], ts[1:1 + n], ts[1 + n:]
        if stacked:
            y = mlp_silu(x, ws, bs)
        else:
            y = x
            for w, b in zip(ws, bs):
                y = linear_silu(y, w, b)
        y.backward(g)
        return y.data, [t.grad for t in ts]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys.modules["autograd.functional.linear"], "_MIN_ROWS", 1)
        mp.setattr(sys.modules["autograd.functional.linear"], "_MIN_MACS", 0)
        mp.setattr(_blocks, "num_threads", lambda: threads)
        (y, grads), (y_ref, grads_ref) = run(True), run(False)
        with no_grad():
            params = [Tensor(a, requires_grad=True) for a in arrays[1:]]
            y_free = mlp_silu(Tensor(arrays[0]), params[:n], params[n:])
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, grads_ref):
        assert (got is None) == (want is None)
        if got is not None:
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert not y_free.requires_grad
    np.testing.assert_allclose(y_free.data, y_ref, rtol=1e-12, atol=1e-12)


def test_mlp_silu_gradcheck_and_errors():
    from autograd.functional.linear import mlp_silu
    rng = np.random.default_rng(5)
    x, w1, w2, b2 = (Tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((2, 3, 4), (5, 4), (2, 5), (2,)))
    assert gradcheck(lambda x, w1, w2, b2: mlp_silu(x, [w1, w2], [None, b2]), [x, w1, w2, b2])
    with pytest.raises(ValueError, match=r"mlp_silu: layer 1's weight \(2, 4\) should be \(out_features, 5\)"):
        mlp_silu(x, [w1, Tensor(np.zeros((2, 4)))])
    with pytest.raises(ValueError, match=r"mlp_silu: layer 0's weight \(5, 3\) should be \(out_features, 4\) "
                                         r"to take the input \(2, 3, 4\)"):
        mlp_silu(x, [Tensor(np.zeros((5, 3)))])
    with pytest.raises(ValueError, match="mlp_silu: 2 weights but 1 biases"):
        mlp_silu(x, [w1, w2], [b2])
    with pytest.raises(ValueError, match=r"mlp_silu: layer 1's bias must have shape \(2,\)"):
        mlp_silu(x, [w1, w2], [None, Tensor(np.zeros(3))])
    with pytest.raises(ValueError, match="mlp_silu: weights must hold at least one"):
        mlp_silu(x, [])
