"""Winograd F(2x2, 3x3) (autograd/ops/winograd.py) against independent derivations:

* the three matrices against the definition of 1-D correlation (np.correlate), F(2, 3);
* the plain tile-loop reference and the fast kernels against conv2d_reference (the loop over
  kernel taps, with its hand-written backward), in values, input gradient, weight gradient and
  bias gradient, on hypothesis-drawn shapes (odd sizes, 1 channel, batch 1), in float64 to
  ~1e-10, the fast kernels forced through many blocks on 1 and 2 threads;
* the kernels' backward (assembled as an op here) against finite differences (gradcheck);
* float32: the relative error against the float64 reference stays below FLOAT32_BOUND.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autograd.functional as F
from autograd import Tensor, gradcheck
from autograd.functional.conv_reference import conv2d_reference
from autograd.ops import _blocks, winograd
from autograd.tensor import make_node

# Measured ~2-4e-7 at the UNet's shapes (C up to 128; benchmarks/results/2026-12-02-winograd.md),
# the same order as im2col's own float32 error; the bound leaves room for unlucky draws.
FLOAT32_BOUND = 2e-6


def nhwc(a: Any) -> Any:
    return a.transpose(0, 2, 3, 1)


def reference(x: Any, w: Any, b: Any, gy: Any) -> tuple[Any, Any, Any, Any]:
    """y, dL/dx, dL/dw, dL/db of conv2d_reference (stride 1, padding 1) for output gradient gy."""
    tx, tw, tb = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
    y = conv2d_reference(tx, tw, tb, stride=1, padding=1)
    y.backward(gy)
    return y.data, tx.grad, tw.grad, tb.grad


def fast(x: Any, w: Any, b: Any, gy: Any) -> tuple[Any, Any, Any, Any]:
    """The same four by the fast kernels, NCHW in and out (the kernels work on NHWC views)."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    y = winograd.winograd_correlate(nhwc(x), winograd.filter_transform(w), b).reshape(n, h, wd, o)
    w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # dL/dx: the flipped kernel, channels swapped
    dx = winograd.winograd_correlate(nhwc(gy), winograd.filter_transform(w_flip)).reshape(n, h, wd, c)
    dw, db = winograd.winograd_weight_grad(nhwc(x), nhwc(gy), bias_grad=True)
    return y.transpose(0, 3, 1, 2), dx.transpose(0, 3, 1, 2), dw, db


@st.composite
def problems(draw: Any, max_size: int = 9) -> dict[str, Any]:
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    return dict(x=rng.uniform(-3, 3, (n, c, h, w)), w=rng.uniform(-3, 3, (o, c, 3, 3)),
                b=rng.uniform(-3, 3, o), gy=rng.uniform(-3, 3, (n, o, h, w)))


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def blocks_forced(request):
    """Every image its own block (_BLOCK_BYTES of 1), the blocks shared among 1 or 2 threads."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_blocks, "num_threads", lambda: request.param)
        mp.setattr(winograd, "_BLOCK_BYTES", 1)
        yield request.param


with_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------- the matrices
@pytest.mark.parametrize("seed", range(5))
def test_matrices_compute_f23_one_dimensional_correlation(seed):
    """F(2, 3): A^T [(G g) * (B^T d)] = the 2 outputs of correlating a 4-tap input d with a
    3-tap filter g (Lavin & Gray section 4.1), and the 2-D nesting the 2x2 outputs of a 4x4 tile."""
    rng = np.random.default_rng(seed)
    bt, g_mat, at = (np.array(m, dtype=np.float64) for m in (winograd.BT, winograd.G, winograd.AT))
    d, g = rng.standard_normal(4), rng.standard_normal(3)
    np.testing.assert_allclose(at @ ((g_mat @ g) * (bt @ d)), np.correlate(d, g, mode="valid"),
                               rtol=1e-13, atol=1e-13)
    d2, g2 = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    direct = [[np.sum(d2[i:i + 3, j:j + 3] * g2) for j in range(2)] for i in range(2)]
    tile = at @ ((g_mat @ g2 @ g_mat.T) * (bt @ d2 @ bt.T)) @ at.T
    np.testing.assert_allclose(tile, direct, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------- float64: equal to the reference
@given(problem=problems())
def test_plain_reference_equals_conv2d_reference(problem):
    x, w, b, gy = problem["x"], problem["w"], problem["b"], problem["gy"]
    y, _, dw, _ = reference(x, w, b, gy)
    np.testing.assert_allclose(winograd.winograd_reference(x, w, b), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd.winograd_reference(x, w), y - b[None, :, None, None], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd.winograd_weight_grad_reference(x, gy), dw, rtol=1e-10, atol=1e-10)


@with_fixture
@given(problem=problems(), channels_last=st.booleans())
def test_fast_kernels_equal_conv2d_reference(blocks_forced, problem, channels_last):
    x, w, b, gy = problem["x"], problem["w"], problem["b"], problem["gy"]
    if channels_last:  # NHWC memory seen as NCHW, as conv2d's outputs are
        x, gy = (np.ascontiguousarray(nhwc(a)).transpose(0, 3, 1, 2) for a in (x, gy))
    for got, want, name in zip(fast(x, w, b, gy), reference(x, w, b, gy), ("y", "dx", "dw", "db")):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=name)


def test_fast_kernels_without_bias_and_at_the_unets_sizes():
    """No bias; and the sizes the UNets use (28, 14, 7), with more channels and default blocks."""
    rng = np.random.default_rng(3)
    for size, c, o in ((28, 5, 6), (14, 16, 8), (7, 9, 16)):
        x, w = rng.standard_normal((3, c, size, size)), rng.standard_normal((o, c, 3, 3))
        gy = rng.standard_normal((3, o, size, size))
        y, dx, dw, _ = reference(x, w, np.zeros(o), gy)
        got = winograd.winograd_correlate(nhwc(x), winograd.filter_transform(w)).reshape(3, size, size, o)
        np.testing.assert_allclose(got.transpose(0, 3, 1, 2), y, rtol=1e-10, atol=1e-10)
        dw_fast, db = winograd.winograd_weight_grad(nhwc(x), nhwc(gy))
        assert db is None
        np.testing.assert_allclose(dw_fast, dw, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------- gradcheck
def winograd_conv2d(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """The kernels assembled as an autograd op (forward, dx, dw, db), to gradcheck them."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    y = winograd.winograd_correlate(nhwc(x.data), winograd.filter_transform(w.data), b.data)

    def backward(g: Any) -> tuple[Any, Any, Any]:
        w_flip = w.data[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        dx = winograd.winograd_correlate(nhwc(g), winograd.filter_transform(w_flip)).reshape(n, h, wd, c)
        dw, db = winograd.winograd_weight_grad(nhwc(x.data), nhwc(g), bias_grad=True)
        return dx.transpose(0, 3, 1, 2), dw, db

    return make_node(y.reshape(n, h, wd, o).transpose(0, 3, 1, 2), (x, w, b), backward, "winograd_conv2d")


@settings(max_examples=5)
@given(problem=problems(max_size=5))
def test_kernels_pass_gradcheck(problem):
    inputs = [Tensor(problem[k], requires_grad=True) for k in ("x", "w", "b")]
    assert gradcheck(winograd_conv2d, inputs)


# ---------------------------------------------------------------------------- float32
@pytest.mark.parametrize("size, c, o", [(28, 32, 32), (14, 64, 64), (7, 128, 64), (5, 1, 3)])
def test_float32_error_is_bounded(size, c, o):
    """||y32 - y64|| / ||y64|| below FLOAT32_BOUND for the forward, dx and dw, inputs of unit
    scale and weights of fan-in scale, as the UNet's are at initialisation."""
    rng = np.random.default_rng(size + c)
    x = rng.standard_normal((2, c, size, size))
    w = rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)
    b = rng.standard_normal(o)
    gy = rng.standard_normal((2, o, size, size))
    exact = reference(x, w, b, gy)
    got = fast(*(a.astype(np.float32) for a in (x, w, b, gy)))
    for g32, g64, name in zip(got, exact, ("y", "dx", "dw", "db")):
        assert g32.dtype == np.float32, name
        err = np.linalg.norm(g32 - g64) / np.linalg.norm(g64)
        assert err < FLOAT32_BOUND, f"{name}: relative error {err:.2e}"


# ---------------------------------------------------------------------------- conv2d's dispatch
@pytest.fixture
def winograd_everywhere():
    """conv2d takes the Winograd path for every 3x3 stride-1 padding-1 convolution."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(winograd, "MIN_SIZE", 1)
        mp.setattr(winograd, "MIN_HARMONIC_CHANNELS", 0)
        yield


def conv2d_values_and_grads(fn: Any, problem: dict[str, Any], bias: bool) -> list[Any]:
    ts = [Tensor(problem[k].copy(), requires_grad=True) for k in (("x", "w", "b") if bias else ("x", "w"))]
    y = fn(*ts, stride=1, padding=1)
    y.backward(problem["gy"])
    return [y.data] + [t.grad for t in ts]


@with_fixture
@given(problem=problems(), bias=st.booleans())
def test_conv2d_by_winograd_equals_reference(winograd_everywhere, blocks_forced, problem, bias):
    got = conv2d_values_and_grads(F.conv2d, problem, bias)
    want = conv2d_values_and_grads(conv2d_reference, problem, bias)
    for g, r, name in zip(got, want, ("y", "dx", "dw", "db")):
        assert g.shape == r.shape and g.dtype == r.dtype, name
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10, err_msg=name)


def test_conv2d_by_winograd_passes_gradcheck(winograd_everywhere):
    rng = np.random.default_rng(7)
    inputs = [Tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 5, 4), (2, 3, 3, 3), (2,))]
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), inputs)


@pytest.mark.parametrize("hw, c, o, kernel, stride, padding, expected", [
    ((28, 28), 64, 32, 3, 1, 1, True), ((14, 14), 64, 64, 3, 1, 1, True), ((14, 14), 32, 64, 3, 1, 1, True),
    ((28, 28), 32, 32, 3, 1, 1, False),   # a tie: im2col stays
    ((7, 7), 128, 64, 3, 1, 1, False),    # small images: a quarter of the tiles' outputs wasted
    ((28, 28), 1, 32, 3, 1, 1, False), ((28, 28), 64, 64, 3, 2, 1, False), ((28, 28), 64, 64, 1, 1, 0, False),
    ((28, 28), 64, 64, 3, 1, 0, False)])
def test_the_rule_picks_winograd_where_it_measured_faster(hw, c, o, kernel, stride, padding, expected):
    assert winograd.use_winograd(np, (kernel, kernel), (stride, stride), (padding, padding), hw, c, o) is expected


def test_conv2d_takes_the_winograd_path_where_the_rule_says(monkeypatch):
    calls = []
    real = winograd.winograd_correlate
    monkeypatch.setattr(winograd, "winograd_correlate", lambda *a: calls.append(a[0].shape) or real(*a))
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((1, 64, 14, 14)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((64, 64, 3, 3)).astype(np.float32), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    assert calls == [(1, 14, 14, 64), (1, 14, 14, 64)]  # forward and dx
    F.conv2d(Tensor(x.data[:, :, :7, :7]), w, padding=1)
    assert len(calls) == 2


def test_an_empty_batch_gives_empty_results_as_im2col_does():
    x = Tensor(np.zeros((0, 64, 14, 14), np.float32), requires_grad=True)
    w = Tensor(np.ones((64, 64, 3, 3), np.float32), requires_grad=True)
    b = Tensor(np.ones(64, np.float32), requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    assert y.shape == (0, 64, 14, 14)
    y.sum().backward()
    assert x.grad.shape == (0, 64, 14, 14) and not w.grad.any() and not b.grad.any()
