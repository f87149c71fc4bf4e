"""conv2d, avg_pool2d and interpolate: forward against independent formulas (scipy correlate,
reshape-mean, np.repeat), backward against finite differences, fast against reference."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from hypothesis import assume, example, given
from hypothesis import strategies as st

from autograd import Tensor, gradcheck, no_grad
from autograd.backend import cuda_available, cuda_unavailable_reason, get_array_module, to_numpy
from autograd.functional.conv import avg_pool2d, conv2d, interpolate
from autograd.functional.conv_reference import conv2d_reference

RNG = np.random.default_rng(0)


def randn(*shape, dtype=np.float64, rng=RNG):
    return rng.standard_normal(shape).astype(dtype)


def channels_last(a):
    """The same NCHW values, stored NHWC (as conv2d's own outputs are), on a's device."""
    return get_array_module(a).ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def scipy_conv2d(x, w, b, stride, padding):
    """Cross-correlation per (n, o, c) with scipy on the zero-padded input, then striding."""
    (sh, sw), (ph, pw) = stride, padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, o = x.shape[0], w.shape[0]
    out = []
    for i in range(n):
        rows = []
        for j in range(o):
            full = sum(scipy.signal.correlate(x_pad[i, c], w[j, c], mode="valid") for c in range(x.shape[1]))
            rows.append(full[::sh, ::sw] + (0.0 if b is None else b[j]))
        out.append(rows)
    return np.array(out)


# ---------------------------------------------------------------------------- forward
CONV_CASES = [  # (N, C, O, H, W, kh, kw, stride, padding, bias)
    (2, 3, 4, 7, 6, 3, 3, 1, 1, True),
    (1, 2, 3, 8, 8, 3, 3, 2, 1, True),
    (2, 1, 2, 5, 7, 2, 3, (1, 2), (0, 2), False),
    (1, 4, 1, 1, 1, 1, 1, 1, 0, True),
    (3, 2, 5, 6, 5, 3, 1, 3, (2, 0), True),
    (1, 2, 2, 3, 3, 1, 1, 1, 2, False),  # padding wider than the kernel: border outputs are just b
]


@pytest.mark.parametrize("op", [conv2d, conv2d_reference], ids=["fast", "reference"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_matches_scipy_correlate(xp, op, case):
    n, c, o, h, w, kh, kw, stride, padding, has_bias = case
    x, wt, b = randn(n, c, h, w), randn(o, c, kh, kw), randn(o) if has_bias else None
    y = op(Tensor(xp.asarray(x)), Tensor(xp.asarray(wt)), None if b is None else Tensor(xp.asarray(b)),
           stride=stride, padding=padding)
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    expected = scipy_conv2d(x, wt, b, pair(stride), pair(padding))
    assert y.shape == expected.shape
    np.testing.assert_allclose(to_numpy(y.data), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, None), ((2, 3), None), (3, 2), (2, 1),
                                            ((1, 2), (2, 1))])
def test_avg_pool2d_forward(xp, kernel, stride):
    x = randn(2, 3, 9, 8)
    y = to_numpy(avg_pool2d(Tensor(xp.asarray(x)), kernel, stride).data)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (kh, kw) if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    if (sh, sw) == (kh, kw):  # non-overlapping windows: crop, then a reshape-mean
        ho, wo = x.shape[2] // kh, x.shape[3] // kw
        expected = x[:, :, :ho * kh, :wo * kw].reshape(2, 3, ho, kh, wo, kw).mean(axis=(3, 5))
    else:  # overlapping windows: a box filter by scipy, then striding
        box = np.full((1, 1, kh, kw), 1.0 / (kh * kw))
        expected = scipy.signal.correlate(x, box, mode="valid")[:, :, ::sh, ::sw]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, kwargs, reps", [
    ((2, 3, 4, 5), {"scale_factor": 2}, (2, 2)),
    ((2, 3, 4, 5), {"scale_factor": (3, 1)}, (3, 1)),
    ((1, 2, 3, 3), {"scale_factor": 2.0}, (2, 2)),
    ((2, 3, 4, 5), {"size": (8, 15)}, (2, 3)),
    ((1, 1, 4, 1), {"size": 4}, (1, 4)),
])
def test_interpolate_nearest_forward_is_repeat_twice(xp, shape, kwargs, reps):
    x = randn(*shape)
    y = to_numpy(interpolate(Tensor(xp.asarray(x)), mode="nearest", **kwargs).data)
    expected = np.repeat(np.repeat(x, reps[0], axis=2), reps[1], axis=3)
    np.testing.assert_array_equal(y, expected)


# ---------------------------------------------------------------------------- gradients
@st.composite
def conv_problems(draw):
    """Small conv2d problems: any batch/channel/size down to 1, kernels 1..3, stride 1..2,
    padding 0..2 (per axis), with or without bias, input NCHW or channels-last memory."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    assume(h + 2 * padding[0] >= kh and w + 2 * padding[1] >= kw)  # else the output is empty
    return dict(shapes=((n, c, h, w), (o, c, kh, kw)), stride=stride, padding=padding,
                bias=draw(st.booleans()), channels_last=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def make_conv_inputs(problem, dtype=np.float64):
    rng = np.random.default_rng(problem["seed"])
    (xs, ws) = problem["shapes"]
    x = randn(*xs, dtype=dtype, rng=rng)
    x = channels_last(x) if problem["channels_last"] else x
    inputs = [Tensor(x, requires_grad=True), Tensor(randn(*ws, dtype=dtype, rng=rng), requires_grad=True)]
    if problem["bias"]:
        inputs.append(Tensor(randn(ws[0], dtype=dtype, rng=rng), requires_grad=True))
    return inputs


@given(conv_problems())
def test_conv2d_gradcheck(problem):
    fn = lambda x, w, *b: conv2d(x, w, *b, stride=problem["stride"], padding=problem["padding"])  # noqa: E731
    assert gradcheck(fn, make_conv_inputs(problem))


@given(conv_problems())
def test_conv2d_reference_gradcheck(problem):
    fn = lambda x, w, *b: conv2d_reference(x, w, *b, stride=problem["stride"],  # noqa: E731
                                           padding=problem["padding"])
    assert gradcheck(fn, make_conv_inputs(problem))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@given(problem=conv_problems())
def test_conv2d_fast_matches_reference(problem, dtype, tol):
    results = []
    for op in (conv2d, conv2d_reference):
        inputs = make_conv_inputs(problem, dtype)
        y = op(*inputs, stride=problem["stride"], padding=problem["padding"])
        g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        y.backward(g)
        results.append([y.data] + [t.grad for t in inputs])
    for fast, ref in zip(*results):
        assert fast.dtype == ref.dtype == dtype and fast.shape == ref.shape
        np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max()))


@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.one_of(st.none(), st.integers(1, 3)),
       channels_last_memory=st.booleans())
def test_avg_pool2d_gradcheck(n, c, h, w, kh, kw, stride, channels_last_memory):
    assume(kh <= h and kw <= w)
    x = randn(n, c, h, w)
    x = Tensor(channels_last(x) if channels_last_memory else x, requires_grad=True)
    assert gradcheck(lambda t: avg_pool2d(t, (kh, kw), stride), [x])


@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), channels_last_memory=st.booleans())
def test_interpolate_gradcheck(n, c, h, w, sh, sw, channels_last_memory):
    x = randn(n, c, h, w)
    x = Tensor(channels_last(x) if channels_last_memory else x, requires_grad=True)
    assert gradcheck(lambda t: interpolate(t, scale_factor=(sh, sw), mode="nearest"), [x])


def test_interpolate_backward_sums_each_block():
    x = Tensor(np.zeros((1, 1, 2, 2)), requires_grad=True)
    g = np.arange(16.0).reshape(1, 1, 4, 4)
    interpolate(x, scale_factor=2).backward(g)
    np.testing.assert_array_equal(x.grad[0, 0], [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7],
                                                 [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]])



@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("images_per_block", [1, 2])
@given(problem=conv_problems(), n=st.integers(1, 5))
# Unpadded 3x3 (the im2col windows come from x itself, not a padded copy) and padded, both
# with several blocks.
@example(problem=dict(shapes=((1, 2, 5, 4), (3, 2, 3, 3)), stride=(1, 1), padding=(0, 0), bias=True,
                      channels_last=True, seed=5), n=5)
@example(problem=dict(shapes=((1, 2, 5, 4), (3, 2, 3, 3)), stride=(2, 1), padding=(1, 0), bias=False,
                      channels_last=False, seed=6), n=4)
def test_conv2d_blocks_of_images_match_reference(problem, n, images_per_block, threads):
    """The fast conv builds its im2col matrix a few images at a time (a cache-sized block), the
    blocks shared among threads: with blocks of 1 or 2 images, a short last block, on one
    thread or two, it still matches the reference."""
    from autograd.ops import _blocks
    from autograd.functional import conv as conv_module
    (_, c, h, w), (o, _, kh, kw) = problem["shapes"]
    problem = dict(problem, shapes=((n, c, h, w), (o, c, kh, kw)))
    sh, sw = problem["stride"]
    (ph, pw) = problem["padding"]
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    # The biggest per-image matrix (forward's, backward's input gradient's) sets how many fit.
    per_image = 8 * max(ho * wo, h * w) * kh * kw * max(c, o)
    results = []
    for op in (conv2d, conv2d_reference):
        inputs = make_conv_inputs(problem)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(conv_module, "_BLOCK_BYTES", images_per_block * per_image)
            mp.setattr(_blocks, "num_threads", lambda: threads)
            y = op(*inputs, stride=problem["stride"], padding=problem["padding"])
            y.backward(np.random.default_rng(1).standard_normal(y.shape))
        results.append([y.data] + [t.grad for t in inputs])
    for fast, ref in zip(*results):
        np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(ref).max()))


# ---------------------------------------------------------------------------- dtype, layout, graph
@pytest.mark.parametrize("fn", [
    lambda x, w, b: conv2d(x, w, b, stride=1, padding=1),
    lambda x, w, b: conv2d(x, w, b, stride=2, padding=1),
    lambda x, w, b: avg_pool2d(x, 2),
    lambda x, w, b: interpolate(x, scale_factor=2),
], ids=["conv2d", "conv2d-stride2", "avg_pool2d", "interpolate"])
def test_float32_stays_float32_and_channels_last_stays_channels_last(xp, fn):
    x = Tensor(channels_last(xp.asarray(randn(2, 3, 6, 6, dtype=np.float32))), requires_grad=True)
    w = Tensor(xp.asarray(randn(3, 3, 3, 3, dtype=np.float32)), requires_grad=True)
    b = Tensor(xp.asarray(randn(3, dtype=np.float32)), requires_grad=True)
    y = fn(x, w, b)
    assert y.dtype == xp.float32
    assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous  # NCHW view of NHWC memory
    (y * y).sum().backward()
    for t in (x, w, b):
        assert t.grad is None or (t.grad.dtype == xp.float32 and t.grad.shape == t.shape)


def test_conv2d_skips_gradients_nobody_needs():
    x = Tensor(randn(1, 2, 5, 5))  # an input image: no grad wanted
    w = Tensor(randn(3, 2, 3, 3), requires_grad=True)
    b = Tensor(randn(3))
    y = conv2d(x, w, b, padding=1)
    dx, dw, db = y._backward(np.ones(y.shape))
    assert dx is None and db is None and dw.shape == w.shape
    with no_grad():
        assert not conv2d(x, w, b).requires_grad


# ---------------------------------------------------------------------------- errors
def test_conv2d_channel_mismatch_names_op_and_shapes():
    message = (r"conv2d: input has 3 channels but weight expects 4 "
               r"\(input shape \(1, 3, 5, 5\), weight shape \(4, 4, 3, 3\)\)")
    with pytest.raises(ValueError, match=message):
        conv2d(Tensor(randn(1, 3, 5, 5)), Tensor(randn(4, 4, 3, 3)))


def test_conv2d_kernel_larger_than_padded_input():
    message = r"conv2d: kernel size \(5, 5\) is larger than the padded input \(4, 4\)"
    with pytest.raises(ValueError, match=message):
        conv2d(Tensor(randn(1, 1, 2, 2)), Tensor(randn(1, 1, 5, 5)), padding=1)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dilation": 2}, NotImplementedError, "only dilation=1"),
    ({"groups": 2}, NotImplementedError, "only groups=1"),
    ({"stride": 0}, ValueError, "stride must be >= 1"),
    ({"padding": (1, 2, 3)}, TypeError, "padding must be an int or a pair of ints"),
    ({"stride": 1.5}, TypeError, "stride must be an int or a pair of ints"),
])
def test_conv2d_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        conv2d(Tensor(randn(1, 2, 5, 5)), Tensor(randn(2, 2, 3, 3)), **kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason=cuda_unavailable_reason())
def test_conv2d_device_mismatch_names_op_and_shapes():
    x, w = Tensor(randn(1, 2, 5, 5)).to("cuda"), Tensor(randn(3, 2, 3, 3))
    message = r"conv2d: input is on 'cuda' \(shape \(1, 2, 5, 5\)\) but weight is on 'cpu'"
    with pytest.raises(RuntimeError, match=message):
        conv2d(x, w)


def test_conv2d_bad_bias_dtype_and_rank():
    x, w = Tensor(randn(1, 2, 5, 5)), Tensor(randn(3, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(3,\)"):
        conv2d(x, w, Tensor(randn(2)))
    # One promotion rule for every op (NumPy's): float64 input, float32 weight -> float64 out.
    w32 = Tensor(w.data.astype(np.float32), requires_grad=True)
    y = conv2d(x, w32)
    y.sum().backward()
    assert y.dtype == np.float64 and w32.grad.dtype == np.float32
    np.testing.assert_allclose(y.data, conv2d(x, Tensor(w32.data.astype(np.float64))).data)
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input \(N, C, H, W\), got shape \(2, 5"):
        conv2d(Tensor(randn(2, 5, 5)), w)


def test_interpolate_errors():
    x = Tensor(randn(1, 1, 3, 3))
    with pytest.raises(NotImplementedError, match="mode='bilinear' is not implemented; only mode='nearest'"):
        interpolate(x, scale_factor=2, mode="bilinear")
    with pytest.raises(NotImplementedError, match="mode='bogus' is not a mode"):
        interpolate(x, scale_factor=2, mode="bogus")
    with pytest.raises(ValueError, match="scale_factor must be an integer >= 1"):
        interpolate(x, scale_factor=1.5)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        interpolate(x)
    with pytest.raises(ValueError, match=r"size \(7, 7\) must be a whole multiple of the input size \(3, 3"):
        interpolate(x, size=7)


def test_avg_pool2d_errors():
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel size \(4, 4\) is larger than the input \(3, 3"):
        avg_pool2d(Tensor(randn(1, 1, 3, 3)), 4)
    with pytest.raises(ValueError, match="avg_pool2d: expected a 4-D input"):
        avg_pool2d(Tensor(randn(3, 3)), 2)
