"""Chapter 2, layers: linear, SiLU, conv2d by im2col and its backward, group norm, attention,
and the sinusoidal time embedding.

Backwards are graded as in chapter 1 (gradcheck against central differences of the plain
forward). conv2d's forward is graded against ``scipy.signal.correlate`` summed over channels; the
time embedding by what characterises it: unit (cos, sin) pairs, emb(0), rotation by s * w_j when
t moves by s, and geometrically spaced frequencies measured by finite differences at t = 0.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st
from scipy import signal

from tinydiff.exercises.ch1_gradients import _stub, check_backward, values
from tinydiff.exercises.grading import Exercise, Failure, as_array, call, describe, expect_close, expect_shape, for_all


def grade_linear(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        x, w, b = ex
        check_backward("y = x W^T + b", ("x", "W", "b"), lambda x_, w_, b_: x_ @ w_.T + b_,
                       lambda i, y, g: fn(i[0], i[1], i[2], g), [x, w, b], describe(x=x, W=w, b=b),
                       "sum the bias gradient over the rows of the batch")
    dims = st.tuples(*[st.integers(1, 4)] * 3)
    for_all(dims.flatmap(lambda d: st.tuples(values((d[0], d[1])), values((d[2], d[1])), values((d[2],)))), prop)


def grade_silu(fn: Callable) -> None:
    def prop(x: np.ndarray) -> None:
        check_backward("y = silu(x) = x sigmoid(x)", ("x",), lambda a: a / (1.0 + np.exp(-a)),
                       lambda i, y, g: fn(i[0], g), [x], describe(x=x))
    for_all(st.integers(1, 6).flatmap(lambda n: values((n,), -5.0, 5.0)), prop)


def conv_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation by SciPy, channel by channel, then the stride as a subsampling."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, o = x.shape[0], w.shape[0]
    full = np.array([[sum(signal.correlate(xp[i, c], w[k, c], mode="valid") for c in range(x.shape[1]))
                      for k in range(o)] for i in range(n)])
    return full[:, :, ::stride, ::stride] + b[None, :, None, None]


def conv_examples() -> st.SearchStrategy:
    def build(p: tuple) -> st.SearchStrategy:
        n, c, o, k, stride, padding, extra = p
        h = k + extra - 2 * padding if k + extra - 2 * padding >= 1 else k
        size = max(h, k - 2 * padding, 1)
        return st.tuples(values((n, c, size, size + (extra % 2))), values((o, c, k, k)), values((o,)),
                         st.just(stride), st.just(padding))
    return st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2), st.integers(1, 3),
                     st.integers(1, 2), st.integers(0, 1), st.integers(0, 3)).flatmap(build)


def grade_conv_forward(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        x, w, b, stride, padding = ex
        example = describe(x=x, W=w, b=b) + f", stride = {stride}, padding = {padding}"
        expected = conv_reference(x, w, b, stride, padding)
        got = expect_shape(call(fn, x.copy(), w.copy(), b.copy(), stride, padding), expected.shape,
                           "conv2d's output", example, "H_out = (H + 2 padding - kh) // stride + 1")
        flipped = conv_reference(x, w[:, :, ::-1, ::-1].copy(), b, stride, padding)
        if not np.allclose(got, expected, atol=1e-8) and np.allclose(got, flipped, atol=1e-8):
            raise Failure("conv2d computes a cross-correlation (no kernel flip, as torch and tinydiff do): "
                          "you flipped the kernel", example, expected, got)
        expect_close(got, expected, "conv2d's output equals scipy.signal.correlate summed over the "
                     "input channels, plus the bias", example)
    for_all(conv_examples(), prop)


def grade_conv_backward(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        x, w, b, stride, padding = ex
        check_backward(f"conv2d(x, W, b, stride={stride}, padding={padding})", ("x", "W", "b"),
                       lambda x_, w_, b_: conv_reference(x_, w_, b_, stride, padding),
                       lambda i, y, g: fn(i[0], i[1], i[2], g, stride, padding), [x, w, b],
                       describe(x=x, W=w, b=b) + f", stride = {stride}, padding = {padding}")
    for_all(conv_examples(), prop, examples=10)


def _group_norm(x: np.ndarray, groups: int, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    n, c = x.shape[:2]
    xg = x.reshape(n, groups, -1)
    xhat = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return xhat * gamma.reshape(shape) + beta.reshape(shape)


def grade_group_norm(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        x, groups, gamma, beta = ex
        check_backward(f"group_norm(x, num_groups={groups}, gamma, beta)", ("x", "gamma", "beta"),
                       lambda x_, g_, b_: _group_norm(x_, groups, g_, b_, 1e-5),
                       lambda i, y, g: fn(i[0], groups, i[1], i[2], g, 1e-5), [x, gamma, beta],
                       describe(x=x, gamma=gamma, beta=beta) + f", num_groups = {groups}",
                       "sum gamma's and beta's gradients over the batch and spatial axes")

    def build(p: tuple) -> st.SearchStrategy:
        n, groups, per, hw = p
        c = groups * per
        return st.tuples(values((n, c, hw, hw), -3, 3), st.just(groups), values((c,)), values((c,)))
    for_all(st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2), st.integers(1, 2)).flatmap(build), prop)


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def grade_attention(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        q, k, v = ex
        check_backward("O = softmax(Q K^T / sqrt(E)) V", ("q", "k", "v"), _attention,
                       lambda i, y, g: fn(i[0], i[1], i[2], g), [q, k, v], describe(q=q, k=k, v=v))
    dims = st.tuples(*[st.integers(1, 3)] * 5)
    for_all(dims.flatmap(lambda d: st.tuples(values((d[0], d[1], d[3])), values((d[0], d[2], d[3])),
                                             values((d[0], d[2], d[4])))), prop)


def grade_embedding(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        t, half, shift, max_period = ex
        dim = 2 * half
        example = describe(t=t) + f", dim = {dim}, max_period = {max_period}"
        emb = expect_shape(call(fn, t.copy(), dim, max_period), (len(t), dim), "the embedding", example)
        c, s = emb[:, :half], emb[:, half:]
        expect_close(c * c + s * s, np.ones_like(c), "column j and column half + j are a (cos, sin) pair: "
                     "cos^2 + sin^2 = 1 (improved-diffusion's order: all cosines, then all sines)", example)
        zero = as_array(call(fn, np.zeros(1), dim, max_period), "the embedding of t = 0")
        expect_close(zero, np.concatenate([np.ones(half), np.zeros(half)])[None],
                     "emb(0) = [cos 0, ..., sin 0, ...] = [1, ..., 1, 0, ..., 0]: all cosines first, then all sines "
                     "(improved-diffusion's order)", example + " at t = 0")
        h = 1e-4  # sin(w t) ~ w t near 0: the frequencies, by a finite difference
        w = as_array(call(fn, np.array([h]), dim, max_period), "the embedding")[0, half:] / h
        expected_w = float(max_period) ** (-np.arange(half) / half)
        expect_close(w, expected_w, "the frequencies w_j (measured as d sin(w_j t)/dt at t = 0) fall "
                     "geometrically from w_0 = 1 to max_period^(-(half-1)/half)", example, rtol=1e-4)
        moved = as_array(call(fn, t + shift, dim, max_period), "the embedding")
        a = shift * expected_w
        expect_close(moved, np.concatenate([c * np.cos(a) - s * np.sin(a), s * np.cos(a) + c * np.sin(a)], 1),
                     f"moving t by s = {shift} rotates each (cos, sin) pair by the angle s w_j", example, rtol=1e-5,
                     atol=1e-6)
    draw = st.tuples(st.integers(1, 4).flatmap(lambda n: values((n,), 0.0, 1000.0)), st.integers(1, 16),
                     st.floats(0.0, 10.0), st.sampled_from([10.0, 10000.0]))
    for_all(draw, prop)


GN_DOC = """
    The backward of group norm (Wu & He 2018): split C channels into G groups; per sample n and
    group g, mu and var are the mean and (biased) variance over the group's channels and all
    spatial positions; x_hat = (x - mu) / sqrt(var + eps); y = gamma_c x_hat + beta_c.
    Shapes: x (N, C, H, W), gamma and beta (C,), grad = dL/dy of x's shape.
    Return (dL/dx, dL/dgamma, dL/dbeta).
    Derive on paper: with dxhat = grad * gamma, r = 1/sqrt(var + eps) and means over the group,
    dL/dx = r (dxhat - mean(dxhat) - x_hat mean(dxhat x_hat)).
    dL/dgamma_c = sum over n, h, w of grad x_hat; dL/dbeta_c = sum of grad.
"""

EXERCISES = [
    Exercise("2.1", "linear_backward", "y = x W^T + b: dL/dx, dL/dW, dL/db",
             _stub("linear_backward(x, W, b, grad)", """
    The backward of a linear layer y = x W^T + b (torch.nn.functional.linear's convention).
    Shapes: x (N, in), W (out, in), b (out,), grad = dL/dy (N, out).
    Return (dL/dx, dL/dW, dL/db). Derive with index sums as in 1.9: y_nj = sum_i x_ni W_ji + b_j.
"""), ("dL/dx = grad @ W; dL/dW = grad.T @ x.", "b was broadcast over the N rows: dL/db = grad.sum(axis=0)."),
             "autograd/functional/linear.py (linear)", grade_linear,
             teaches="the layer every MLP is made of, and its bias as a broadcast"),
    Exercise("2.2", "silu_backward", "y = silu(x) = x sigmoid(x): dL/dx",
             _stub("silu_backward(x, grad)", """
    The backward of SiLU (swish), y = x s(x) with s the logistic sigmoid. Return dL/dx.
    Derive with the product rule and 1.6: dy/dx = s(x) + x s(x) (1 - s(x)).
"""), ("s = 1 / (1 + np.exp(-x)); dL/dx = grad * (s + x * s * (1 - s)).",),
             "autograd/functional/activation_reference.py (silu_reference; the fast silu in activation.py)", grade_silu,
             teaches="the product rule on the UNet's activation"),
    Exercise("2.3", "conv2d_forward", "conv2d's forward by im2col",
             _stub("conv2d_forward(x, W, b, stride, padding)", """
    A 2-D convolution layer (a cross-correlation, as in torch): x (N, C, H, W), W (O, C, kh, kw),
    b (O,), an int stride and an int zero padding on every side. Return y (N, O, H_out, W_out),
    H_out = (H + 2 padding - kh) // stride + 1 (likewise W_out), with
    y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] x_pad[n, c, i stride + p, j stride + q].
    Do it by im2col: gather every (C, kh, kw) window of x_pad into a row of a matrix
    (N H_out W_out, C kh kw), multiply by W reshaped to (O, C kh kw) transposed, reshape back.
    No kernel flip: this is what deep learning calls convolution.
"""), ("np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) first.",
       "np.lib.stride_tricks.sliding_window_view(x_pad, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride] "
       "has shape (N, C, H_out, W_out, kh, kw): transpose to (N, H_out, W_out, C, kh, kw) and reshape.",
       "cols @ W.reshape(O, -1).T + b, reshaped to (N, H_out, W_out, O), then transposed to (N, O, H_out, W_out)."),
             "autograd/functional/conv_reference.py (conv2d_reference; the fast conv2d in conv.py)", grade_conv_forward,
             teaches="how a convolution becomes one matrix product (im2col)"),
    Exercise("2.4", "conv2d_backward", "conv2d's backward: dL/dx, dL/dW, dL/db",
             _stub("conv2d_backward(x, W, b, grad, stride, padding)", """
    The backward of 2.3: given grad = dL/dy (N, O, H_out, W_out), return (dL/dx, dL/dW, dL/db)
    of the shapes of x, W, b.
    Derive from the im2col form y_mat = cols @ W_mat^T + b: dL/dW_mat = grad_mat^T @ cols,
    dL/db = grad summed over n, i, j, dL/dcols = grad_mat @ W_mat, and dL/dx is col2im: every
    window's gradient added back into the positions of x_pad it was read from (overlapping
    windows add up), then the padding cut off.
"""), ("Reuse your im2col from 2.3; grad_mat = grad.transpose(0, 2, 3, 1).reshape(-1, O).",
       "col2im: loop over the kh * kw kernel taps (p, q) and add the tap's slice of dL/dcols into "
       "dx_pad[:, :, p : p + stride * H_out : stride, q : q + stride * W_out : stride].",
       "dL/db = grad.sum(axis=(0, 2, 3))."),
             "autograd/functional/conv_reference.py (conv2d_reference's backward; "
             "fast: conv.py _weight_grad, _input_grad_by_col2im)",
             grade_conv_backward, time_limit=120.0,
             teaches="col2im, the adjoint of im2col, and the weight gradient as one GEMM"),
    Exercise("2.5", "group_norm_backward", "group norm's backward: dL/dx, dL/dgamma, dL/dbeta",
             _stub("group_norm_backward(x, num_groups, gamma, beta, grad, eps)", GN_DOC),
             ("Work on x reshaped to (N, G, C/G * H * W); the means are over the last axis.",
              "x_hat depends on x through mu and var too: that is where the two mean terms come from.",
              "dL/dgamma = (grad * x_hat).sum(axis=(0, 2, 3)), dL/dbeta = grad.sum(axis=(0, 2, 3))."),
             "autograd/functional/norm_reference.py (group_norm_reference; fast: norm.py _normalize_backward)",
             grade_group_norm,
             teaches="a backward through a mean and a variance (the normalization trick)"),
    Exercise("2.6", "attention_backward", "scaled dot-product attention's backward: dQ, dK, dV",
             _stub("attention_backward(q, k, v, grad)", """
    The backward of O = P V, P = softmax(S) over keys, S = Q K^T / sqrt(E) (Vaswani et al. 2017,
    eq. 1). Shapes: q (B, L, E), k (B, S, E), v (B, S, Ev), grad = dL/dO (B, L, Ev).
    Return (dL/dq, dL/dk, dL/dv).
    Derive: dV = P^T dO; dP = dO V^T; dS = P * (dP - rowsum(dP * P)) (1.10, row by row);
    dQ = dS K / sqrt(E); dK = dS^T Q / sqrt(E). (^T swaps the last two axes.)
"""), ("Recompute P in the backward from q and k.", "np.swapaxes(a, -1, -2) is the batched transpose."),
             "autograd/functional/attention_reference.py (scaled_dot_product_attention_reference; "
             "fast: attention.py _attend_backward)",
             grade_attention, teaches="softmax's backward inside the UNet's attention block"),
    Exercise("2.7", "timestep_embedding", "the sinusoidal time embedding",
             _stub("timestep_embedding(t, dim, max_period=10000.0)", """
    The sinusoidal embedding of timesteps (Vaswani et al. 2017 sec. 3.5; DDPM sec. 4 uses it for t),
    in improved-diffusion's layout: half = dim // 2 frequencies
    w_j = max_period^(-j / half), j = 0..half-1, and
    emb[b] = [cos(t_b w_0), ..., cos(t_b w_{half-1}), sin(t_b w_0), ..., sin(t_b w_{half-1})].
    Shapes: t (B,) float or int timesteps; dim even. Return (B, dim) float64.
"""), ("freqs = np.exp(-np.log(max_period) * np.arange(half) / half)",
       "angles = t[:, None] * freqs[None, :]; np.concatenate([np.cos(angles), np.sin(angles)], axis=1)"),
             "tinydiff/models/embeddings.py (timestep_embedding)", grade_embedding,
             teaches="how the network is told the noise level"),
]
