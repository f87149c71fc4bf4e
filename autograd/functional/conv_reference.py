"""A plainly readable 2-D convolution, forward and backward: the version to learn from.

Read this before ``conv.py``. A convolution with a kh x kw kernel is a sum of kh*kw
matrix products, one per kernel offset (p, q): the offset picks out the input pixels that
tap (p, q) of the kernel sees, a strided slice of the zero-padded input, and mixes their
channels with the weight matrix w[:, :, p, q]. Backward runs the same loop and sends each
output gradient back to the pixels and weights that produced it.

This is slow (kh*kw small contractions without a BLAS GEMM, in NCHW layout); ``conv.conv2d``
computes the same numbers fast, and the tests check the two agree.
"""
from __future__ import annotations

from typing import Any

from autograd.functional.conv import _conv2d_geometry, promote
from autograd.tensor import Tensor, make_node


def conv2d_reference(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0) -> Tensor:
    """y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] x_pad[n,c,s*i+p,s*j+q];  dL/db[o] = sum_{n,i,j} g[n,o,i,j],
    dL/dw[o,c,p,q] = sum_{n,i,j} g[n,o,i,j] x_pad[n,c,s*i+p,s*j+q],
    dL/dx_pad[n,c,s*i+p,s*j+q] += sum_o g[n,o,i,j] w[o,c,p,q].

    Same arguments and result as ``conv.conv2d`` (dilation 1, groups 1).
    """
    input, weight, bias = promote(input, weight, bias)
    geo = _conv2d_geometry("conv2d_reference", input, weight, bias, stride, padding, 1, 1)
    (sh, sw), (ph, pw), (kh, kw), (ho, wo) = geo.stride, geo.padding, geo.kernel, geo.out_hw
    xp = input.xp
    n, c, h, w = input.shape

    x_pad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=input.dtype)
    x_pad[:, :, ph:ph + h, pw:pw + w] = input.data

    def seen_by_tap(a: Any, p: int, q: int) -> Any:
        """The (N, C, Ho, Wo) pixels of padded ``a`` that kernel tap (p, q) multiplies."""
        return a[:, :, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw]

    out = xp.zeros((n, weight.shape[0], ho, wo), dtype=input.dtype)
    for p in range(kh):
        for q in range(kw):
            out += xp.einsum("nchw,oc->nohw", seen_by_tap(x_pad, p, q), weight.data[:, :, p, q])
    if bias is not None:
        out += bias.data[None, :, None, None]

    def backward(g: Any) -> tuple[Any, Any, Any]:
        dx_pad = xp.zeros_like(x_pad)
        dw = xp.zeros_like(weight.data)
        for p in range(kh):
            for q in range(kw):
                # Each tap sent x_pad's pixels to y through w[:, :, p, q]; send g back the same way.
                seen_by_tap(dx_pad, p, q)[...] += xp.einsum("nohw,oc->nchw", g, weight.data[:, :, p, q])
                dw[:, :, p, q] = xp.einsum("nohw,nchw->oc", g, seen_by_tap(x_pad, p, q))
        dx = dx_pad[:, :, ph:ph + h, pw:pw + w]  # the padding's gradient is dropped
        db = g.sum(axis=(0, 2, 3)) if bias is not None else None
        return dx, dw, db

    parents = (input, weight) if bias is None else (input, weight, bias)
    return make_node(out, parents, lambda g: backward(g)[:len(parents)], "conv2d_reference")
