"""Winograd minimal filtering F(2x2, 3x3) for 3x3 convolutions at stride 1, padding 1.

Read ``winograd_reference`` first: the algorithm of Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks" (2016, arXiv 1509.09308), section 4, with its three matrices
written out, a loop over output tiles, on one screen. ``conv2d_reference`` (the plain loop over
kernel taps, ``autograd/functional/conv_reference.py``) is what both are tested against.

The idea: a 2x2 block of outputs of a 3x3 correlation sees a 4x4 tile d of the padded input.
Computed directly that is 2*2*3*3 = 36 multiplications per channel pair; Winograd's
F(2x2, 3x3) (the nested 1-D F(2, 3) of section 4.1) gets it with 16:

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 4x4)

U = G g G^T is the filter, transformed once; V = B^T d B and the inverse transform A^T . A use
only additions. Summed over input channels, the 16 elementwise products become 16 matrix
products, one per position (xi, nu) of the 4x4 tile (section 4): M[xi,nu] = V[xi,nu] @ U[xi,nu]
with V (tiles, C) and U (C, O): the 2.25x fewer multiplications are done by BLAS GEMMs.

Backward, by the chain rule through the same formula (its matrices transposed):

    dU[xi,nu] = sum over tiles  V[xi,nu]^T @ (A dY A^T)[xi,nu],    dL/dg = G^T dU G

which is again 16 GEMMs, now with the long (tiles) axis as the sum: the weight gradient.
The input gradient is a 3x3 stride-1 padding-1 convolution of dY with the kernel flipped and
its channels swapped (``conv.py``'s ``_input_grad_by_flipped_conv``), so it is the forward
again. ``conv.conv2d`` uses these kernels only for the shapes where they measured faster
than its im2col + GEMM (``use_winograd``; benchmarks/results/2026-12-02-winograd.md).

The fast kernels below work on channels-last (NHWC) arrays, a few images at a time so that a
block's transformed tiles (4x its input) stay in cache, the blocks shared among the engine's
threads (``_blocks.run_blocks``), as conv.py's im2col does.
"""
from __future__ import annotations

from typing import Any

from autograd.backend import get_array_module
from autograd.ops._blocks import batch_blocks, run_blocks, sum_runs

# F(2x2, 3x3): Lavin & Gray 2016, section 4.1 (the 1-D F(2, 3) matrices, nested for 2-D).
# Tuples (immutable), made arrays of the data's module and dtype where used: the engine imports
# no NumPy of its own (tests/test_backend_guard.py).
BT = ((1, 0, -1, 0),
      (0, 1, 1, 0),
      (0, -1, 1, 0),
      (0, 1, 0, -1))        # input transform B^T (4x4)
G = ((1, 0, 0),
     (0.5, 0.5, 0.5),
     (0.5, -0.5, 0.5),
     (0, 0, 1))             # filter transform G (4x3)
AT = ((1, 1, 1, 0),
      (0, 1, -1, -1))       # output transform A^T (2x4)


# ---------------------------------------------------------------------------- the plain reference
def winograd_reference(x: Any, w: Any, b: Any = None) -> Any:
    """y = conv2d(x, w, b, stride=1, padding=1) for x (N, C, H, W), w (O, C, 3, 3), by F(2x2, 3x3):
    for each 2x2 output tile, Y = A^T [ sum_c (G w G^T) * (B^T d B) ] A over its 4x4 input tile d.

    NumPy or CuPy arrays in and out (no autograd): the algorithm, written to be read.
    """
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    o = w.shape[0]
    bt, g, at = (xp.asarray(m, dtype=x.dtype) for m in (BT, G, AT))
    th, tw = -(-h // 2), -(-wd // 2)  # tiles down and across (an odd size gets a half tile of zeros)
    x_pad = xp.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    x_pad[:, :, 1:h + 1, 1:wd + 1] = x
    u = g @ w @ g.T                                   # (O, C, 4, 4): every filter, transformed once
    y = xp.zeros((n, o, 2 * th, 2 * tw), dtype=x.dtype)
    for i in range(th):
        for j in range(tw):
            d = x_pad[:, :, 2 * i:2 * i + 4, 2 * j:2 * j + 4]      # (N, C, 4, 4): the tile 2x2 outputs see
            v = bt @ d @ bt.T                                      # (N, C, 4, 4)
            m = xp.einsum("ocxy,ncxy->noxy", u, v)                 # 16 products, summed over channels
            y[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = at @ m @ at.T  # (N, O, 2, 2)
    y = y[:, :, :h, :wd]
    return y if b is None else y + b[None, :, None, None]


def winograd_weight_grad_reference(x: Any, gy: Any) -> Any:
    """dL/dw (O, C, 3, 3) of ``winograd_reference`` for x (N, C, H, W) and dL/dy ``gy`` (N, O, H, W):
    dU = sum over tiles and images of (A dY A^T) * (B^T d B), then dL/dw = G^T dU G."""
    xp = get_array_module(x)
    n, c, h, wd = x.shape
    o = gy.shape[1]
    bt, g, at = (xp.asarray(m, dtype=x.dtype) for m in (BT, G, AT))
    th, tw = -(-h // 2), -(-wd // 2)
    x_pad = xp.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    x_pad[:, :, 1:h + 1, 1:wd + 1] = x
    gy_pad = xp.zeros((n, o, 2 * th, 2 * tw), dtype=x.dtype)  # outputs past the edge had no loss
    gy_pad[:, :, :h, :wd] = gy
    du = xp.zeros((o, c, 4, 4), dtype=x.dtype)
    for i in range(th):
        for j in range(tw):
            v = bt @ x_pad[:, :, 2 * i:2 * i + 4, 2 * j:2 * j + 4] @ bt.T  # (N, C, 4, 4)
            dm = at.T @ gy_pad[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2] @ at  # (N, O, 4, 4): A dY A^T
            du += xp.einsum("noxy,ncxy->ocxy", dm, v)
    return g.T @ du @ g


# ---------------------------------------------------------------------------- when it pays
# Where F(2x2, 3x3) measured faster than conv.py's im2col + GEMM (float32, batch 64, 1 and 2
# threads; benchmarks/results/2026-12-02-winograd.md): its transforms cost a few passes over
# C- and O-channel tiles, its GEMMs save 5/9 of C*O multiply-adds per pixel, so it wins once the
# harmonic mean of C and O is large (1.15-1.45x at 64 channels and more, a tie at 32 -> 32); and
# on images of at least 14x14 (at 7x7 a quarter of the tiles' outputs fall outside: 0.83-0.99x).
MIN_SIZE = 14
MIN_HARMONIC_CHANNELS = 40


def use_winograd(xp: Any, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                 hw: tuple[int, int], c: int, o: int) -> bool:
    """True where conv2d should compute with these kernels: a 3x3 kernel at stride 1 and
    padding 1 on the CPU (NumPy), an image of at least MIN_SIZE a side, and 2*C*O/(C+O) at
    least MIN_HARMONIC_CHANNELS. The input gradient, a convolution with C and O swapped, has
    the same harmonic mean, so one answer serves the forward and both gradients."""
    return (xp.__name__ == "numpy" and kernel == (3, 3) and stride == (1, 1) and padding == (1, 1)
            and min(hw) >= MIN_SIZE and 2 * c * o >= MIN_HARMONIC_CHANNELS * (c + o))


# ---------------------------------------------------------------------------- the fast kernels
# Bytes of transformed input tiles (V, 4x the input) built and multiplied at a time; measured
# like conv.py's _BLOCK_BYTES (benchmarks/results/2026-12-02-winograd.md).
_BLOCK_BYTES = 1 << 20


def filter_transform(w: Any) -> Any:
    """U = G w G^T for w (O, C, 3, 3), as 16 contiguous (C, O) matrices: (16, C, O), index 4*xi + nu.

    As one GEMM: U[xi,nu] = sum_{p,q} G[xi,p] G[nu,q] w[p,q] = (G kron G) @ vec(w), rather than
    O*C tiny 4x3 products.
    """
    xp = get_array_module(w)
    o, c = w.shape[:2]
    g = xp.asarray(G, dtype=w.dtype)
    gg = xp.kron(g, g)  # (16, 9): row 4*xi + nu, column 3*p + q
    u = gg @ w.reshape(o * c, 9).T  # (16, O*C)
    return xp.ascontiguousarray(u.reshape(16, o, c).transpose(0, 2, 1))


def _tiles(h: int, w: int) -> tuple[int, int]:
    return -(-h // 2), -(-w // 2)


def _blocks(n: int, h: int, w: int, c: int, itemsize: int, xp: Any) -> list[slice]:
    th, tw = _tiles(h, w)
    return batch_blocks(xp, n, 16 * th * tw * c * itemsize, _BLOCK_BYTES)


class _InputTiles:
    """V = B^T d B of every 4x4 tile of a block of NHWC images zero-padded by 1, as 16 (tiles, C)
    matrices, in buffers allocated once per run of blocks and reused (the zero border is written
    once; only the interior changes)."""

    def __init__(self, xp: Any, nb: int, h: int, w: int, c: int, dtype: Any) -> None:
        self.h, self.w = h, w
        th, tw = _tiles(h, w)
        self.th, self.tw = th, tw
        self.padded = xp.zeros((nb, 2 * th + 2, 2 * tw + 2, c), dtype=dtype)
        self.cols = xp.empty((4, nb, 2 * th + 2, tw, c), dtype=dtype)   # d B: the column pass
        self.v = xp.empty((16, nb * th * tw, c), dtype=dtype)            # B^T (d B): the row pass

    def __call__(self, x_block: Any) -> Any:
        """V for the images ``x_block`` (m, H, W, C), m <= nb: a (16, m*th*tw, C) array."""
        m, (th, tw) = x_block.shape[0], (self.th, self.tw)
        p = self.padded[:m]
        p[:, 1:self.h + 1, 1:self.w + 1] = x_block
        xp = get_array_module(p)
        # Column pass first, t = d B, over columns 2j+b (B's columns, written out): its strided
        # reads and writes run over C channels at a time, and it makes half as much as the row pass.
        d = [p[:, :, b:b + 2 * tw:2] for b in range(4)]
        t = self.cols[:, :m]
        xp.subtract(d[0], d[2], out=t[0])
        xp.add(d[1], d[2], out=t[1])
        xp.subtract(d[2], d[1], out=t[2])
        xp.subtract(d[1], d[3], out=t[3])
        # Row pass, v = B^T t, over rows 2i+a, all four columns of t at once: whole rows of tiles.
        e = [t[:, :, a:a + 2 * th:2] for a in range(4)]  # each (4, m, th, tw, C)
        v = self.v[:, :m * th * tw].reshape(4, 4, m, th, tw, -1)
        xp.subtract(e[0], e[2], out=v[0])
        xp.add(e[1], e[2], out=v[1])
        xp.subtract(e[2], e[1], out=v[2])
        xp.subtract(e[1], e[3], out=v[3])
        return self.v[:, :m * th * tw]


def winograd_correlate(x: Any, u: Any, bias: Any = None) -> Any:
    """y = conv2d(x, w, bias, stride=1, padding=1) for NHWC ``x`` (N, H, W, C) (any strides) and
    u = filter_transform(w) (16, C, O): the (N*H*W, O) result, i.e. NHWC memory.

    Per block of images: V (16 tiles x C matrices), M = V @ U (16 GEMMs), Y = A^T M A.
    The bias rides in M[1,1]: A^T's column 1 is (1, 1), so an entry added there reaches all four
    outputs of the tile once, which saves a pass over the output.
    """
    xp = get_array_module(x)
    n, h, w, c = x.shape
    o = u.shape[2]
    th, tw = _tiles(h, w)
    out = xp.empty((n * h * w, o), dtype=x.dtype)
    out4 = out.reshape(n, h, w, o)
    blocks = _blocks(n, h, w, c, x.itemsize, xp)

    def correlate_blocks(run: list[slice]) -> None:
        nb = max((b.stop - b.start for b in run), default=0)  # an empty batch: no blocks
        tiles = _InputTiles(xp, nb, h, w, c, x.dtype)
        m_buf = xp.empty((16, nb * th * tw, o), dtype=x.dtype)
        s_buf = xp.empty((2, 4, nb * th * tw, o), dtype=x.dtype)
        for block in run:
            m = block.stop - block.start
            v = tiles(x[block])
            prod = m_buf[:, :m * th * tw]
            xp.matmul(v, u, out=prod)
            if bias is not None:
                prod[5] += bias
            _output_transform(xp, prod, s_buf[:, :, :m * th * tw], out4[block], th, tw)

    run_blocks(correlate_blocks, blocks)
    return out


def _output_transform(xp: Any, prod: Any, s: Any, y: Any, th: int, tw: int) -> None:
    """y (m, H, W, O) = A^T M A for M = ``prod`` (16, m*th*tw, O); ``s`` (2, 4, m*th*tw, O) scratch."""
    m4 = prod.reshape(4, 4, *prod.shape[1:])
    # Row pass, s = A^T M: rows (1, 1, 1, 0) and (0, 1, -1, -1), all four columns at once.
    xp.add(m4[0], m4[1], out=s[0])
    s[0] += m4[2]
    xp.subtract(m4[1], m4[2], out=s[1])
    s[1] -= m4[3]
    m, h, w, o = y.shape
    s6 = s.reshape(2, 4, m, th, tw, o)
    for r in range(2):
        rows = (h - r + 1) // 2  # tile rows whose output row 2i+r is inside the image
        for q in range(2):
            cols = (w - q + 1) // 2
            s0, s1, s2, s3 = (s6[r, k, :, :rows, :cols] for k in range(4))
            dst = y[:, r::2, q::2]
            # Column pass, y = s A: columns (1, 1, 1, 0) and (0, 1, -1, -1) of A.
            if q == 0:
                xp.add(s0, s1, out=dst)
                dst += s2
            else:
                xp.subtract(s1, s2, out=dst)
                dst -= s3


def winograd_weight_grad(x: Any, gy: Any, bias_grad: bool = False) -> tuple[Any, Any]:
    """dL/dw (O, C, 3, 3) of the stride-1 padding-1 3x3 conv of NHWC ``x`` (N, H, W, C), from the
    NHWC output gradient ``gy`` (N, H, W, O); with ``bias_grad`` also dL/db (O,) (else None).

    dU = sum over tiles V^T @ (A dY A^T), 16 GEMMs per block whose inner axis is the block's
    tiles, summed; then dL/dw = G^T dU G once at the end.
    """
    xp = get_array_module(x)
    n, h, w, c = x.shape
    o = gy.shape[3]
    th, tw = _tiles(h, w)

    def weight_grad_blocks(run: list[slice]) -> tuple[Any, Any]:
        nb = max((b.stop - b.start for b in run), default=0)  # an empty batch: no blocks
        tiles = _InputTiles(xp, nb, h, w, c, x.dtype)
        gy_pad = xp.zeros((nb, 2 * th, 2 * tw, o), dtype=x.dtype)  # outputs past an odd edge: no loss
        z = xp.empty((4, nb, 2 * th, tw, o), dtype=x.dtype)        # dY A^T: the column pass
        dm = xp.empty((16, nb * th * tw, o), dtype=x.dtype)        # A (dY A^T): the row pass
        du = xp.zeros((16, c, o), dtype=x.dtype)
        part = xp.empty_like(du)
        db = xp.zeros(o, dtype=x.dtype) if bias_grad else None
        for block in run:
            m = block.stop - block.start
            v = tiles(x[block])
            g_block = gy[block]
            gp = gy_pad[:m]
            gp[:, :h, :w] = g_block
            # Column pass first (as in _InputTiles), dY A^T with A = [[1,0],[1,1],[1,-1],[0,-1]]:
            # columns 2j and 2j+1 of the gradient.
            g0, g1 = gp[:, :, 0::2], gp[:, :, 1::2]
            zm = z[:, :m]
            zm[0] = g0
            xp.add(g0, g1, out=zm[1])
            xp.subtract(g0, g1, out=zm[2])
            xp.negative(g1, out=zm[3])
            # Row pass, A (dY A^T): rows 2i and 2i+1, all four columns at once.
            e0, e1 = zm[:, :, 0::2], zm[:, :, 1::2]
            dmm = dm[:, :m * th * tw]
            d6 = dmm.reshape(4, 4, m, th, tw, o)
            d6[0] = e0
            xp.add(e0, e1, out=d6[1])
            xp.subtract(e0, e1, out=d6[2])
            xp.negative(e1, out=d6[3])
            xp.matmul(v.transpose(0, 2, 1), dmm, out=part)
            du += part
            if db is not None:
                db += g_block.sum(axis=(0, 1, 2))
        return du, db

    du, db = sum_runs(run_blocks(weight_grad_blocks, _blocks(n, h, w, c, x.itemsize, xp)))
    # dL/dw[p,q] = sum_{xi,nu} G[xi,p] G[nu,q] dU[xi,nu] = (G kron G)^T @ dU, one GEMM.
    g = xp.asarray(G, dtype=x.dtype)
    gg = xp.kron(g, g)
    dw = (gg.T @ du.reshape(16, c * o)).reshape(3, 3, c, o)
    return dw.transpose(3, 2, 0, 1), db
