"""Convolution, average pooling and nearest upsampling on NCHW tensors: a UNet's hot spot.

Read ``conv_reference.py`` first: conv2d as a plain loop over kernel offsets, forward and
backward on one screen. This module computes the same numbers fast: conv2d is one op with a
derived backward, computed as im2col + GEMM:

* im2col: a strided *view* of the padded input gives, for each output pixel (n, i, j), the
  kh x kw x C patch it sees; copying that view makes a matrix of N*Ho*Wo rows and kh*kw*C
  columns, and the convolution becomes a GEMM with the (kh*kw*C, O) weight matrix.
* In cache-sized blocks: the matrix is kh*kw times the input, tens of MB for a UNet layer, so
  it is built and multiplied a few images at a time in one reused buffer that stays in cache
  (``_column_blocks``); the GEMMs stay fat (hundreds of rows) and memory traffic drops ~9x.
* Channels-last memory: the work is done in NHWC, and results are returned as NCHW
  *transposed views* of NHWC arrays. Elementwise ops keep that layout (NumPy's order='K'), so
  the next conv's ``x.transpose(0, 2, 3, 1)`` is already contiguous, and a patch row is kh*kw
  runs of C contiguous channels.
* Backward: dW is a GEMM of the column blocks with the output gradient; dx (stride 1) is a
  convolution of the zero-padded output gradient with the flipped kernel, channels in and out
  swapped: the same blocked im2col + GEMM.
* Winograd: a 3x3 stride-1 padding-1 convolution with many channels (``winograd.use_winograd``)
  is computed by F(2x2, 3x3) instead, forward and both gradients, with 2.25x fewer
  multiplications (``autograd/ops/winograd.py``, which shows its plain reference first).
"""
from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any, NamedTuple

from autograd.backend import device_of, get_array_module
from autograd.ops import winograd
from autograd.ops._blocks import batch_blocks, run_blocks, sum_runs
from autograd.tensor import Tensor, make_node


# ---------------------------------------------------------------------------- public ops
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] x_pad[n,c,s*i+p,s*j+q];  dL/db[o] = sum_{n,i,j} g[n,o,i,j],
    dL/dw[o,c,p,q] = sum_{n,i,j} g[n,o,i,j] x_pad[n,c,s*i+p,s*j+q],  dL/dx = conv_transpose(g, w).

    input (N, C, H, W), weight (O, C, kh, kw), bias (O,) or None; stride and padding are an int
    or an (h, w) pair. Returns (N, O, Ho, Wo) with Ho = (H + 2*pad_h - kh) // s_h + 1.
    Only dilation=1 and groups=1 are supported.
    """
    input, weight, bias = promote(input, weight, bias)
    geo = _conv2d_geometry("conv2d", input, weight, bias, stride, padding, dilation, groups)
    (kh, kw), (ho, wo) = geo.kernel, geo.out_hw
    xp = input.xp
    n, c, h, w = input.shape
    o = weight.shape[0]
    wt = weight.data  # the array as it is now, whatever later happens to the Tensor
    x = input.data.transpose(0, 2, 3, 1)  # NHWC: free when the input is channels-last memory

    # 3x3 stride 1 padding 1 with many channels: Winograd F(2x2, 3x3), forward and both gradients
    # (autograd/ops/winograd.py, where the rule says why); else im2col + GEMM.
    by_winograd = winograd.use_winograd(xp, geo.kernel, geo.stride, geo.padding, (h, w), c, o)
    if by_winograd:
        out = winograd.winograd_correlate(x, winograd.filter_transform(wt), None if bias is None else bias.data)
    else:
        # Weight as a (kh*kw*C, O) matrix, rows in the (p, q, c) order of a column row.
        w_mat = wt.transpose(2, 3, 1, 0).reshape(kh * kw * c, o)
        out = _correlate(x, w_mat, geo.kernel, geo.stride, geo.padding, geo.out_hw,
                         None if bias is None else bias.data)
    out = out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)
    # The columns are kh*kw (9x) the size of the input; keeping them for dW would multiply a UNet's
    # stored activations by ~9, so backward rebuilds them from x, block by block, in cache.
    # x itself is kept alive by the graph anyway.

    def backward(g: Any) -> tuple[Any, ...]:
        g_mat = xp.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(n * ho * wo, o)  # free if channels-last
        dx = dw = db = None
        need_db = bias is not None and bias.requires_grad
        if weight.requires_grad and by_winograd:
            dw, db = winograd.winograd_weight_grad(x, g_mat.reshape(n, ho, wo, o), need_db)
        elif weight.requires_grad:
            dw_mat, db = _weight_grad(x, g_mat, geo.kernel, geo.stride, geo.padding, geo.out_hw, need_db)
            dw = dw_mat.reshape(kh, kw, c, o).transpose(3, 2, 0, 1)
        elif need_db:
            db = g_mat.sum(axis=0)
        if input.requires_grad and by_winograd:  # the flipped-kernel convolution, by Winograd too
            w_flip = winograd.filter_transform(wt[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
            dx = winograd.winograd_correlate(g_mat.reshape(n, ho, wo, o), w_flip).reshape(n, h, w, c)
            dx = dx.transpose(0, 3, 1, 2)
        elif input.requires_grad:
            dx = _conv2d_input_grad(g_mat.reshape(n, ho, wo, o), wt, (h, w), geo)
        return (dx, dw) if bias is None else (dx, dw, db)

    return make_node(out, (input, weight) if bias is None else (input, weight, bias), backward, "conv2d")


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


def promote(input: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """conv2d's tensors cast to their common dtype by NumPy's promotion rule (float32 with float64
    is float64), as every op does: the cast is a graph node (``Tensor.astype``), so each gradient
    comes back in its own tensor's dtype. A None bias stays None."""
    dtype = input.xp.result_type(input.dtype, weight.dtype, *(() if bias is None else (bias.dtype,)))

    def cast(t: Tensor) -> Tensor:
        return t if t.dtype == dtype else t.astype(dtype)

    return cast(input), cast(weight), None if bias is None else cast(bias)


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
    stride, padding = _pair(stride, "stride", op), _pair(padding, "padding", op)
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: stride must be >= 1 and padding >= 0, got stride={stride}, "
                         f"padding={padding}")
    kernel = (weight.shape[2], weight.shape[3])
    padded = (input.shape[2] + 2 * padding[0], input.shape[3] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"{op}: kernel size {kernel} is larger than the padded input {padded} "
                         f"(input shape {input.shape}, padding {padding})")
    out_hw = ((padded[0] - kernel[0]) // stride[0] + 1, (padded[1] - kernel[1]) // stride[1] + 1)
    return _Geometry(stride, padding, kernel, out_hw)


# ---------------------------------------------------------------------------- im2col in cache-sized blocks
# Bytes of im2col matrix built and multiplied at a time. The whole matrix of a UNet layer is tens
# of MB (kh*kw = 9 times its input): built at once it goes out to DRAM and comes back for the
# GEMM, and memory bandwidth, not arithmetic, sets the pace. A block this size is still in the
# core's L2 cache when the GEMM reads it, and a few hundred rows keep the GEMM efficient
# (measured: benchmarks/results/autograd-measurements.md#convolution).
_BLOCK_BYTES = 1 << 20


def _windows(a: Any, kernel: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int]) -> Any:
    """The im2col windows of NHWC ``a`` (any strides) as a zero-copy (N, Ho, Wo, kh, kw, C) view:
    element [n, i, j, p, q, c] is a[n, s*i + p, s*j + q, c] (the next output pixel is s pixels on,
    the next tap one pixel on)."""
    sn, sh, sw, sc = a.strides
    return get_array_module(a).lib.stride_tricks.as_strided(
        a, (a.shape[0], out_hw[0], out_hw[1], kernel[0], kernel[1], a.shape[3]),
        (sn, stride[0] * sh, stride[1] * sw, sh, sw, sc))


def _blocks(x: Any, kernel: tuple[int, int], out_hw: tuple[int, int]) -> list[slice]:
    """Blocks of images whose im2col matrices are about ``_BLOCK_BYTES`` each."""
    n, _, _, c = x.shape
    per_image = out_hw[0] * out_hw[1] * kernel[0] * kernel[1] * c * x.itemsize
    return batch_blocks(get_array_module(x), n, per_image, _BLOCK_BYTES)


def _columns_are_x(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> bool:
    """A 1x1 convolution at stride 1 without padding: its im2col matrix is x itself (NHWC rows)."""
    return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)


def _column_blocks(x: Any, blocks: list[slice], kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int], out_hw: tuple[int, int],
                   ones_column: bool = False) -> Iterator[tuple[slice, Any]]:
    """The im2col matrix of NHWC ``x`` zero-padded by ``padding``, block by block: yields
    (rows, cols), cols the slice of [x_pad[n, s*i + p, s*j + q, c] for (n, i, j) rows and
    (p, q, c) columns] for the images of the block, rows its row range (n*Ho*Wo + ...).
    With ``ones_column`` each row ends in one more column of ones (see ``_correlate``), except
    for a 1x1 convolution, whose columns are x itself.

    The two buffers are allocated once for all the blocks and reused: the padded block's border
    is written once (zeros) and only its interior changes, so padding costs no extra pass over x;
    likewise the ones.
    """
    xp = get_array_module(x)
    _, h, w, c = x.shape
    (kh, kw), (ph, pw), (ho, wo) = kernel, padding, out_hw
    if _columns_are_x(kernel, stride, padding):
        for block in blocks:  # no copy if x is NHWC
            cols = xp.ascontiguousarray(x[block]).reshape(-1, c)
            yield slice(block.start * h * w, block.stop * h * w), cols
        return
    nb = max((b.stop - b.start for b in blocks), default=0)
    k = kh * kw * c
    matrix = xp.empty((nb * ho * wo, k + 1 if ones_column else k), dtype=x.dtype)
    if ones_column:
        matrix[:, k] = 1
    # The first k columns of the matrix as (image, i, j, p, q, c): the layout the windows copy into.
    item, row = matrix.itemsize, matrix.strides[0]
    cols = xp.lib.stride_tricks.as_strided(
        matrix, (nb, ho, wo, kh, kw, c), (ho * wo * row, wo * row, row, kw * c * item, c * item, item))
    padded = xp.zeros((nb, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype) if ph or pw else None
    # One windows view for all the blocks, sliced per block: as_strided is slow Python held under
    # the GIL, and a UNet step has thousands of blocks (benchmarks/results/autograd-measurements.md#convolution).
    windows = _windows(x if padded is None else padded, kernel, stride, out_hw)
    for block in blocks:
        m = block.stop - block.start
        if padded is None:
            xp.copyto(cols[:m], windows[block])
        else:
            padded[:m, ph:ph + h, pw:pw + w] = x[block]
            xp.copyto(cols[:m], windows[:m])
        yield slice(block.start * ho * wo, block.stop * ho * wo), matrix[:m * ho * wo]


def _correlate(x: Any, w_mat: Any, kernel: tuple[int, int], stride: tuple[int, int],
               padding: tuple[int, int], out_hw: tuple[int, int], bias: Any = None) -> Any:
    """y[(n, i, j), o] = b[o] + sum_{p,q,c} x_pad[n, s*i+p, s*j+q, c] w_mat[(p, q, c), o] for NHWC x:
    the (N*Ho*Wo, O) result, i.e. NHWC memory. One GEMM per block of ``_column_blocks``, the
    blocks shared among the cores (``run_blocks``).

    The bias rides in the GEMM: [columns, 1] @ [w_mat; b] = columns @ w_mat + b, which saves a
    pass over each output block (measured: benchmarks/results/autograd-measurements.md#convolution).
    """
    xp = get_array_module(x)
    out = xp.empty((x.shape[0] * out_hw[0] * out_hw[1], w_mat.shape[1]), dtype=x.dtype)
    fold = bias is not None and not _columns_are_x(kernel, stride, padding)  # x has no room for the ones
    w_ext = xp.concatenate([w_mat, bias.reshape(1, -1)]) if fold else w_mat

    def correlate_blocks(blocks: list[slice]) -> None:
        for rows, cols in _column_blocks(x, blocks, kernel, stride, padding, out_hw, ones_column=fold):
            block_out = out[rows]
            xp.matmul(cols, w_ext, out=block_out)
            if bias is not None and not fold:
                block_out += bias

    run_blocks(correlate_blocks, _blocks(x, kernel, out_hw))
    return out


def _weight_grad(x: Any, g_mat: Any, kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], out_hw: tuple[int, int], bias_grad: bool = False) -> tuple[Any, Any]:
    """dL/dw_mat = columns^T @ g as a (kh*kw*C, O) matrix, summed block by block, and with
    ``bias_grad`` dL/db = the column sums of g (O,) from the same blocks (else None): on the
    threads, while each block of g is in cache, rather than as one more pass on the caller's.

    columns^T @ g rather than g^T @ columns: same maths, but OpenBLAS runs the latter's
    (O, rows) x (rows, K) shape much slower (benchmarks/results/autograd-measurements.md#convolution).
    """
    xp = get_array_module(x)

    def weight_grad_blocks(blocks: list[slice]) -> tuple[Any, Any]:
        dw = xp.zeros((kernel[0] * kernel[1] * x.shape[3], g_mat.shape[1]), dtype=x.dtype)
        db = xp.zeros(g_mat.shape[1], dtype=x.dtype) if bias_grad else None
        part = xp.empty_like(dw)
        for rows, cols in _column_blocks(x, blocks, kernel, stride, padding, out_hw):
            g_block = g_mat[rows]
            xp.matmul(cols.T, g_block, out=part)
            dw += part
            if db is not None:
                db += g_block.sum(axis=0)
        return dw, db

    return sum_runs(run_blocks(weight_grad_blocks, _blocks(x, kernel, out_hw)))


def _conv2d_input_grad(g: Any, wt: Any, hw: tuple[int, int], geo: _Geometry) -> Any:
    """dL/dx of conv2d, an NCHW view of NHWC memory, from the NHWC output gradient ``g``."""
    (ph, pw), (kh, kw) = geo.padding, geo.kernel
    if geo.stride == (1, 1) and ph <= kh - 1 and pw <= kw - 1:
        return _input_grad_by_flipped_conv(g, wt, hw, geo)
    # With stride s the flipped-kernel convolution would run over the gradient dilated with zeros,
    # wasting (s^2 - 1)/s^2 of its GEMM on them (measured: benchmarks/results/autograd-measurements.md#convolution).
    # (And padding > k - 1, which no network uses, would need the gradient cropped first.)
    return _input_grad_by_col2im(g, wt, hw, geo)


def _input_grad_by_flipped_conv(g: Any, wt: Any, hw: tuple[int, int], geo: _Geometry) -> Any:
    """Stride 1: dL/dx_pad[u] = sum_p g[u - p] w[p] (each x_pad[i + p] fed y[i] through tap p)
    = sum_p' g_full[u + p'] w[k-1-p'] with g_full = g zero-padded by k-1: a correlation of the
    padded gradient with the flipped kernel, channels in and out swapped. Cropping x's padding
    off dL/dx_pad leaves g padded by k-1-pad: the same blocked im2col + GEMM as the forward.
    """
    (ph, pw), (kh, kw) = geo.padding, geo.kernel
    h, w = hw
    n, o, c = g.shape[0], wt.shape[0], wt.shape[1]
    w_flip = wt[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * o, c)  # rows (p', q', o)
    dx = _correlate(g, w_flip, (kh, kw), (1, 1), (kh - 1 - ph, kw - 1 - pw), (h, w))
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _input_grad_by_col2im(g: Any, wt: Any, hw: tuple[int, int], geo: _Geometry) -> Any:
    """Any stride: the gradient of the columns is g @ W^T (rows (n, i, j), columns (p, q, c));
    column (p, q) was copied from x_pad[:, s*i + p, s*j + q], so col2im adds it back there:
    kh*kw strided slice-adds (never np.add.at, which is far slower), a block of images at a time
    so that the block's column gradient stays in cache (benchmarks/results/autograd-measurements.md#convolution)."""
    (sh, sw), (ph, pw), (kh, kw), (ho, wo) = geo
    h, w = hw
    n, o, c = g.shape[0], wt.shape[0], wt.shape[1]
    xp = get_array_module(g)
    w_mat_t = wt.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)  # W^T, columns (p, q, c)
    dx_pad = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=g.dtype)

    def col2im_blocks(blocks: list[slice]) -> None:
        for block in blocks:
            m = block.stop - block.start
            d_cols = (g[block].reshape(m * ho * wo, o) @ w_mat_t).reshape(m, ho, wo, kh, kw, c)
            for p in range(kh):
                for q in range(kw):
                    dx_pad[block, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw] += d_cols[:, :, :, p, q]

    run_blocks(col2im_blocks, batch_blocks(xp, n, ho * wo * kh * kw * c * g.itemsize, _BLOCK_BYTES))
    return dx_pad[:, ph:ph + h, pw:pw + w].transpose(0, 3, 1, 2)


# ---------------------------------------------------------------------------- argument check of pooling and upsampling
def _check_4d(op: str, input: Tensor) -> None:
    if input.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {input.shape}")
