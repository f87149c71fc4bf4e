"""Convolution, average pooling and nearest upsampling on NCHW tensors: a UNet's hot spot.

conv2d is one op with a derived backward, computed as im2col + one GEMM (see
``conv_reference.py`` for the same maths as a plain loop over kernel offsets):

* im2col: a strided *view* of the padded input gives, for each output pixel (n, i, j), the
  kh x kw x C patch it sees; copying that view makes a matrix of N*Ho*Wo rows and kh*kw*C
  columns, and the convolution becomes one fat GEMM with the (kh*kw*C, O) weight matrix.
* Channels-last memory: the work is done in NHWC, and results are returned as NCHW
  *transposed views* of NHWC arrays. Elementwise ops keep that layout (NumPy's order='K'), so
  the next conv's ``x.transpose(0, 2, 3, 1)`` is already contiguous, and a patch row is kh*kw
  runs of C contiguous channels.
* Backward: dW is a GEMM of the output gradient with the same columns; dx is a convolution of
  the (zero-padded) output gradient with the flipped kernel, channels in and out swapped.
"""
from __future__ import annotations

import operator
from typing import Any, NamedTuple

from autograd.backend import device_of, get_array_module
from autograd.tensor import Tensor, make_node


# ---------------------------------------------------------------------------- argument checks
def _pair(value: Any, name: str, op: str) -> tuple[int, int]:
    """An int or an (h, w) pair of ints as a pair of Python ints."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    try:
        if len(pair) != 2 or any(isinstance(v, bool) for v in pair):
            raise TypeError
        return operator.index(pair[0]), operator.index(pair[1])
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None


class _Geometry(NamedTuple):
    stride: tuple[int, int]
    padding: tuple[int, int]
    kernel: tuple[int, int]
    out_hw: tuple[int, int]


def _conv2d_geometry(op: str, input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any,
                     padding: Any, dilation: Any, groups: int) -> _Geometry:
    """Validate conv2d's arguments; return stride, padding, kernel size and output size."""
    if _pair(dilation, "dilation", op) != (1, 1):
        raise NotImplementedError(f"{op}: only dilation=1 is supported, got dilation={dilation!r}")
    if groups != 1:
        raise NotImplementedError(f"{op}: only groups=1 is supported, got groups={groups!r}")
    if input.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight (out_channels, in_channels, kh, kw), "
                         f"got shape {weight.shape}")
    if input.shape[1] != weight.shape[1]:
        raise ValueError(f"{op}: input has {input.shape[1]} channels but weight expects "
                         f"{weight.shape[1]} (input shape {input.shape}, weight shape {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[0]},) to match weight shape "
                         f"{weight.shape}, got {bias.shape}")
    for other, what in ((weight, "weight"), (bias, "bias")):
        if other is None:
            continue
        if device_of(other.data) != device_of(input.data):
            raise RuntimeError(f"{op}: input is on {input.device!r} (shape {input.shape}) but {what} "
                               f"is on {other.device!r} (shape {other.shape}); move one with .to(...)")
        if other.dtype != input.dtype:
            raise TypeError(f"{op}: input dtype {input.dtype} != {what} dtype {other.dtype}; "
                            f"cast one with .astype(...)")
    stride, padding = _pair(stride, "stride", op), _pair(padding, "padding", op)
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: stride must be >= 1 and padding >= 0, got stride={stride}, "
                         f"padding={padding}")
    kernel = weight.shape[2:]
    padded = (input.shape[2] + 2 * padding[0], input.shape[3] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"{op}: kernel size {kernel} is larger than the padded input {padded} "
                         f"(input shape {input.shape}, padding {padding})")
    out_hw = tuple((padded[d] - kernel[d]) // stride[d] + 1 for d in range(2))
    return _Geometry(stride, padding, kernel, out_hw)


# ---------------------------------------------------------------------------- channels-last helpers
def _pad_hw(a: Any, ph: int, pw: int) -> Any:
    """NHWC ``a`` with ph zero rows above and below and pw zero columns left and right."""
    if ph == 0 and pw == 0:
        return a
    n, h, w, c = a.shape
    out = get_array_module(a).zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=a.dtype)
    out[:, ph:ph + h, pw:pw + w] = a
    return out


def _im2col(a: Any, kernel: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int]) -> Any:
    """Patches of NHWC ``a`` as a (N*Ho*Wo, kh*kw*C) matrix: row (n, i, j) holds
    a[n, s*i + p, s*j + q, c] for p, q, c in C order.

    The windows are a zero-copy strided view (the next output pixel is s pixels on, the next
    tap one pixel on); the one copy is the reshape into a contiguous GEMM operand.
    """
    xp = get_array_module(a)
    n, _, _, c = a.shape
    sn, sh, sw, sc = a.strides
    windows = xp.lib.stride_tricks.as_strided(
        a, (n, out_hw[0], out_hw[1], kernel[0], kernel[1], c),
        (sn, stride[0] * sh, stride[1] * sw, sh, sw, sc))
    return xp.ascontiguousarray(windows).reshape(n * out_hw[0] * out_hw[1], kernel[0] * kernel[1] * c)


def _place(g: Any, size: tuple[int, int], offset: tuple[int, int]) -> Any:
    """Zeros of spatial ``size`` holding NHWC ``g`` with its pixel (0, 0) at ``offset``; offsets
    may be negative and g may overhang the edges: what falls outside is dropped."""
    n, h, w, c = g.shape
    if offset == (0, 0) and size == (h, w):
        return g  # already in place: no copy
    out = get_array_module(g).zeros((n, size[0], size[1], c), dtype=g.dtype)
    (r0, r1), (c0, c1) = [(max(0, -off), min(count, length - off))  # the source range that lands inside
                          for off, count, length in zip(offset, (h, w), size)]
    if r1 > r0 and c1 > c0:
        out[:, r0 + offset[0]:r1 + offset[0], c0 + offset[1]:c1 + offset[1]] = g[:, r0:r1, c0:c1]
    return out


# ---------------------------------------------------------------------------- conv2d
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] x_pad[n,c,s*i+p,s*j+q];  dL/db[o] = sum_{n,i,j} g[n,o,i,j],
    dL/dw[o,c,p,q] = sum_{n,i,j} g[n,o,i,j] x_pad[n,c,s*i+p,s*j+q],  dL/dx = conv_transpose(g, w).

    input (N, C, H, W), weight (O, C, kh, kw), bias (O,) or None; stride and padding are an int
    or an (h, w) pair. Returns (N, O, Ho, Wo) with Ho = (H + 2*pad_h - kh) // s_h + 1.
    Only dilation=1 and groups=1 are supported.
    """
    geo = _conv2d_geometry("conv2d", input, weight, bias, stride, padding, dilation, groups)
    (sh, sw), (ph, pw), (kh, kw), (ho, wo) = geo.stride, geo.padding, geo.kernel, geo.out_hw
    xp = input.xp
    n, c, h, w = input.shape
    o = weight.shape[0]
    x, wt = input.data, weight.data  # the arrays as they are now, whatever later happens to the Tensors

    def columns() -> Any:
        return _im2col(_pad_hw(x.transpose(0, 2, 3, 1), ph, pw), (kh, kw), (sh, sw), (ho, wo))

    # Weight as a (kh*kw*C, O) matrix, rows in the (p, q, c) order of a column row.
    w_mat = wt.transpose(2, 3, 1, 0).reshape(kh * kw * c, o)
    out = columns() @ w_mat  # (N*Ho*Wo, O): NHWC memory
    if bias is not None:
        out += bias.data
    out = out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)
    # The columns are kh*kw (9x) the size of the input; keeping them for dW would multiply a UNet's
    # stored activations by ~9, so backward rebuilds them from x (one strided copy, cheap beside
    # the GEMMs). x itself is kept alive by the graph anyway.

    def backward(g: Any) -> tuple[Any, ...]:
        g_mat = xp.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(n * ho * wo, o)  # free if channels-last
        dx = dw = db = None
        if bias is not None and bias.requires_grad:
            db = g_mat.sum(axis=0)
        if weight.requires_grad:
            # columns^T @ g rather than g^T @ columns: same maths, but OpenBLAS runs the latter's
            # (O, N*Ho*Wo) x (N*Ho*Wo, K) shape up to 7x slower here.
            dw = (columns().T @ g_mat).reshape(kh, kw, c, o).transpose(3, 2, 0, 1)
        if input.requires_grad:
            dx = _conv2d_input_grad(g_mat.reshape(n, ho, wo, o), wt, (h, w), geo)
        return (dx, dw) if bias is None else (dx, dw, db)

    return make_node(out, (input, weight) if bias is None else (input, weight, bias), backward, "conv2d")


def _conv2d_input_grad(g: Any, wt: Any, hw: tuple[int, int], geo: _Geometry) -> Any:
    """dL/dx of conv2d, an NCHW view of NHWC memory, from the NHWC output gradient ``g``."""
    if geo.stride == (1, 1):
        return _input_grad_by_flipped_conv(g, wt, hw, geo)
    # With stride s the flipped-kernel convolution would run over the gradient dilated with zeros,
    # wasting (s^2 - 1)/s^2 of its GEMM on them: 3x slower than col2im at stride 2 (N=64, C=64, 28x28).
    return _input_grad_by_col2im(g, wt, hw, geo)


def _input_grad_by_flipped_conv(g: Any, wt: Any, hw: tuple[int, int], geo: _Geometry) -> Any:
    """Stride 1: dL/dx_pad[u] = sum_p g[u - p] w[p] (each x_pad[i + p] fed y[i] through tap p)
    = sum_p' g_full[u + p'] w[k-1-p'] with g_full = g zero-padded by k-1: a correlation of the
    padded gradient with the flipped kernel, channels in and out swapped, i.e. im2col + one GEMM.
    Cropping x's padding off dL/dx_pad leaves g at offset k-1-pad in an axis of length H + k - 1.
    """
    (ph, pw), (kh, kw) = geo.padding, geo.kernel
    h, w = hw
    n, o, c = g.shape[0], wt.shape[0], wt.shape[1]
    g_full = _place(g, (h + kh - 1, w + kw - 1), (kh - 1 - ph, kw - 1 - pw))
    w_flip = wt[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * o, c)  # rows (p', q', o)
    dx = _im2col(g_full, (kh, kw), (1, 1), (h, w)) @ w_flip
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _input_grad_by_col2im(g: Any, wt: Any, hw: tuple[int, int], geo: _Geometry) -> Any:
    """Any stride: the gradient of the columns is g @ W^T (rows (n, i, j), columns (p, q, c));
    column (p, q) was copied from x_pad[:, s*i + p, s*j + q], so col2im adds it back there:
    kh*kw strided slice-adds (never np.add.at, which is an order of magnitude slower)."""
    (sh, sw), (ph, pw), (kh, kw), (ho, wo) = geo
    h, w = hw
    n, o, c = g.shape[0], wt.shape[0], wt.shape[1]
    w_mat = wt.transpose(2, 3, 1, 0).reshape(kh * kw * c, o)
    d_cols = (g.reshape(n * ho * wo, o) @ w_mat.T).reshape(n, ho, wo, kh, kw, c)
    dx_pad = get_array_module(g).zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=g.dtype)
    for p in range(kh):
        for q in range(kw):
            dx_pad[:, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw] += d_cols[:, :, :, p, q]
    return dx_pad[:, ph:ph + h, pw:pw + w].transpose(0, 3, 1, 2)


# ---------------------------------------------------------------------------- pooling and upsampling
def _check_4d(op: str, input: Tensor) -> None:
    if input.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {input.shape}")


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None) -> Tensor:
    """y[n,c,i,j] = (1/(kh*kw)) sum_{p<kh,q<kw} x[n,c,s*i+p,s*j+q];
    dL/dx[n,c,s*i+p,s*j+q] += g[n,c,i,j] / (kh*kw).

    kernel_size and stride are an int or an (h, w) pair; stride defaults to kernel_size.
    """
    _check_4d("avg_pool2d", input)
    kh, kw = _pair(kernel_size, "kernel_size", "avg_pool2d")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", "avg_pool2d")
    if min(kh, kw, sh, sw) < 1:
        raise ValueError(f"avg_pool2d: kernel_size and stride must be >= 1, got kernel_size={kernel_size!r}, "
                         f"stride={stride!r}")
    n, c, h, w = input.shape
    if kh > h or kw > w:
        raise ValueError(f"avg_pool2d: kernel size {(kh, kw)} is larger than the input {(h, w)} "
                         f"(input shape {input.shape})")
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    xp, x = input.xp, input.data
    # Tap (p, q) of every window at once: one strided slice per kernel offset.
    taps = [(slice(None), slice(None), slice(p, p + sh * (ho - 1) + 1, sh),
             slice(q, q + sw * (wo - 1) + 1, sw)) for p in range(kh) for q in range(kw)]
    scale = 1.0 / (kh * kw)

    out = xp.zeros_like(x[:, :, :ho, :wo])  # zeros_like keeps x's memory layout (channels-last stays so)
    for tap in taps:
        out += x[tap]
    out *= scale

    def backward(g: Any) -> tuple[Any]:
        g_scaled = g * scale
        dx = xp.zeros_like(x)
        for tap in taps:
            dx[tap] += g_scaled
        return (dx,)

    return make_node(out, (input,), backward, "avg_pool2d")


_TORCH_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest") -> Tensor:
    """y[n,c,i,j] = x[n,c,i//s_h,j//s_w];  dL/dx[n,c,h,w] = sum_{a<s_h,b<s_w} g[n,c,s_h*h+a,s_w*w+b].

    Nearest-neighbour upsampling by whole numbers: give ``scale_factor`` (an int or (h, w) pair,
    e.g. ``interpolate(x, scale_factor=2, mode="nearest")``) or an output ``size`` that is a
    whole multiple of the input's. Other modes are not implemented.
    """
    if mode != "nearest":
        what = "is not implemented" if mode in _TORCH_MODES else "is not a mode"
        raise NotImplementedError(f"interpolate: mode={mode!r} {what}; only mode='nearest' is supported")
    _check_4d("interpolate", input)
    n, c, h, w = input.shape
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor, got "
                         f"size={size!r}, scale_factor={scale_factor!r}")
    if size is not None:
        out_h, out_w = _pair(size, "size", "interpolate")
        if out_h % h or out_w % w or out_h < h or out_w < w:
            raise ValueError(f"interpolate: size {(out_h, out_w)} must be a whole multiple of the input "
                             f"size {(h, w)} (input shape {input.shape})")
        sh, sw = out_h // h, out_w // w
    else:
        pair = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
        whole = len(pair) == 2 and all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                       and float(f).is_integer() and f >= 1 for f in pair)
        if not whole:
            raise ValueError(f"interpolate: nearest mode here upsamples by whole numbers only: "
                             f"scale_factor must be an integer >= 1 or a pair of them, got {scale_factor!r}")
        sh, sw = int(pair[0]), int(pair[1])
    xp = input.xp

    # Channels-last: each pixel's C channels are copied as one contiguous run.
    x_nhwc = input.data.transpose(0, 2, 3, 1)
    up = xp.broadcast_to(x_nhwc[:, :, None, :, None, :], (n, h, sh, w, sw, c))
    out = up.reshape(n, h * sh, w * sw, c).transpose(0, 3, 1, 2)

    def backward(g: Any) -> tuple[Any]:
        blocks = g.transpose(0, 2, 3, 1).reshape(n, h, sh, w, sw, c)  # output pixel (h*sh+a, w*sw+b)
        return (blocks.sum(axis=(2, 4)).transpose(0, 3, 1, 2),)

    return make_node(out, (input,), backward, "interpolate")
