"""linear (with linear_silu, its fusion with the activation of an MLP's hidden layer, and
mlp_silu, a stack of them), embedding and dropout: the ops of fully connected layers.

Read ``linear_reference.py`` first: linear_silu, mlp_silu and dropout as on paper, forward and
backward (the dropout mask drawn plainly, one number per element). This module computes the
same numbers fast, on rows shared among the engine's threads.

linear is one op rather than matmul + transpose + add: with the leading dimensions folded into
one, its forward and both weight gradients are single matrix products.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from autograd.functional.activation import silu_grad_rows, silu_rows
from autograd.ops import _blocks
from autograd.ops._blocks import even_blocks, row_blocks, run_blocks, sum_runs
from autograd.ops.shape import _memory_order
from autograd.random import default_generator, take_uint32
from autograd.tensor import Tensor, is_grad_enabled, make_node

# A thread's share of a linear layer's GEMM: at least this many rows, and at least this many
# multiply-adds, about 30 us of one core's GEMM: less does not pay for waking another thread
# (measured: benchmarks/results/autograd-measurements.md#a-hand-off-per-run).
_MIN_ROWS = 256
_MIN_MACS = 1 << 22
# Bytes below which dropout's products run whole on the calling thread.
_SPLIT_BYTES = _blocks.SPLIT_BYTES


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b, x (*, in), W (out, in), b (out,).    dL/dx = g W,  dL/dW = g^T x,  dL/db = sum g
    (the last two summed over every leading dimension of x).

    With many rows the GEMMs are split by rows among the threads of ``_blocks.run_blocks``
    (dW and db as per-thread partial sums).
    """
    return _linear("linear", input, weight, bias, silu=False)


def linear_silu(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = silu(z), z = x W^T + b: ``silu(linear(x, W, b))`` as one op.    dL/dz = g (s + y (1 - s)),
    s = s(z) the logistic; then dL/dx = dL/dz W, dL/dW = dL/dz^T x, dL/db = sum dL/dz.

    The hidden layer of an MLP. As two ops, each would hand its rows to the engine's threads
    once forward and once backward; here each thread takes its rows through the GEMM and the
    SiLU (and back) while they are still in its cache. The toy MLP's matrices are small enough
    for those hand-offs to show
    (measured: benchmarks/results/autograd-measurements.md#threads-when-sharing-work-out-pays).
    """
    return _linear("linear_silu", input, weight, bias, silu=True)


def mlp_silu(input: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor | None] | None = None) -> Tensor:
    """h_0 = x, h_i = silu(z_i), z_i = h_{i-1} W_i^T + b_i for i = 1..n: n ``linear_silu`` in one op.
    Back from the last layer, with g_n = g:  dL/dz_i = g_i (s_i + h_i (1 - s_i)),  g_{i-1} = dL/dz_i W_i,
    dL/dW_i = dL/dz_i^T h_{i-1},  dL/db_i = sum dL/dz_i;  dL/dx = g_0.

    An MLP's hidden layers. Each thread takes its rows through every layer and back again, so
    the threads meet once forward and once backward, where n linear_silu ops meet n times each
    way; the toy MLP's layers are small enough for those meetings to show (measured:
    benchmarks/results/autograd-measurements.md#a-stack-of-layers-as-one-op).
    ``biases`` is None or one bias (or None) per layer.
    """
    weights = list(weights)
    biases = [None] * len(weights) if biases is None else list(biases)
    _check_stack(input, weights, biases)
    xp = input.xp
    n = len(weights)
    x2 = input.data.reshape(-1, weights[0].shape[1])
    rows = x2.shape[0]
    ws = [w.data for w in weights]
    bs = [None if b is None else b.data for b in biases]
    dtype = xp.result_type(x2, *ws)
    recording = is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, *weights, *biases))
    # Recording: every layer's h_i and s_i stay for the backward. Not: only the last h_n is kept.
    hs = [xp.empty((rows, w.shape[0]), dtype=dtype) for w in (ws if recording else ws[-1:])]
    ss = [xp.empty_like(h) for h in hs] if recording else None
    blocks = even_blocks(xp, rows, _min_rows(sum(w.size for w in ws)))

    def forward_rows(run: list[slice]) -> None:
        for r in run:
            h = x2[r]
            for i, (w, b) in enumerate(zip(ws, bs)):
                if ss is not None:
                    out, s = hs[i][r], ss[i][r]
                else:  # scratch, but for the last layer's output
                    out = hs[0][r] if i == n - 1 else xp.empty((h.shape[0], w.shape[0]), dtype=dtype)
                    s = xp.empty_like(out)
                xp.matmul(h, w.T, out=out)
                if b is not None:
                    out += b
                silu_rows(xp, out, out, s)
                h = out
    run_blocks(forward_rows, blocks)
    if not recording:
        return Tensor(hs[0].reshape(input.shape[:-1] + (ws[-1].shape[0],)))
    assert ss is not None

    def backward(g):
        g2 = g.reshape(rows, ws[-1].shape[0])
        need_x = input.requires_grad
        need_w = [w.requires_grad for w in weights]
        need_b = [b is not None and b.requires_grad for b in biases]
        gx = xp.empty(x2.shape, dtype=g2.dtype) if need_x else None

        def backward_rows(run: list[slice]) -> tuple[Any, ...]:
            gws: list[Any] = [None] * n
            gbs: list[Any] = [None] * n
            for r in run:
                gh = g2[r]  # dL/dh_i for the rows r, from the last layer down
                ones = xp.ones(r.stop - r.start, dtype=g2.dtype)
                for i in reversed(range(n)):
                    gz = xp.empty_like(hs[i][r])
                    silu_grad_rows(xp, gh, hs[i][r], ss[i][r], out=gz)
                    h_in = x2[r] if i == 0 else hs[i - 1][r]
                    if need_w[i]:
                        part = gz.T @ h_in
                        gws[i] = part if gws[i] is None else gws[i] + part
                    if need_b[i]:  # sum over rows as ones^T dL/dz: a GEMV, 2.5x faster than .sum(axis=0)
                        part = ones @ gz
                        gbs[i] = part if gbs[i] is None else gbs[i] + part
                    if i > 0:
                        gh = gz @ ws[i]
                    elif need_x:
                        xp.matmul(gz, ws[0], out=gx[r])
            return (*gws, *gbs)
        totals = sum_runs(run_blocks(backward_rows, blocks))
        gws = [xp.zeros_like(w) if need and gw is None else gw for w, need, gw in zip(ws, need_w, totals[:n])]
        gbs = [xp.zeros_like(b) if need and gb is None else gb for b, need, gb in zip(bs, need_b, totals[n:])]
        grads: list[Any] = [gx.reshape(input.shape) if need_x else None, *gws]
        return tuple(grads + [gb for b, gb in zip(biases, gbs) if b is not None])

    parents = (input, *weights, *(b for b in biases if b is not None))
    return make_node(hs[-1].reshape(input.shape[:-1] + (ws[-1].shape[0],)), parents, backward, "mlp_silu")


def _min_rows(macs_per_row: int) -> int:
    """The fewest rows worth handing to a thread, for GEMMs of ``macs_per_row`` multiply-adds per row."""
    return max(_MIN_ROWS, -(-_MIN_MACS // max(macs_per_row, 1)))


def _check_stack(input: Tensor, weights: list[Tensor], biases: list[Tensor | None]) -> None:
    """mlp_silu's arguments: a chain of layers whose widths meet, on one device."""
    if not weights:
        raise ValueError("mlp_silu: weights must hold at least one layer's (out_features, in_features) weight")
    if len(biases) != len(weights):
        raise ValueError(f"mlp_silu: {len(weights)} weights but {len(biases)} biases; give one bias "
                         "(or None) per layer, or biases=None")
    width = input.shape[-1] if input.ndim >= 1 else None
    for i, (w, b) in enumerate(zip(weights, biases)):
        if w.ndim != 2 or w.shape[1] != width:
            source = f"the input {input.shape}" if i == 0 else f"layer {i - 1}'s output"
            raise ValueError(f"mlp_silu: layer {i}'s weight {w.shape} should be (out_features, {width}) "
                             f"to take {source}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"mlp_silu: layer {i}'s bias must have shape ({w.shape[0]},) to match its "
                             f"weight {w.shape}, got {b.shape}")
        for t in (w, b):
            if t is not None and t.device != input.device:
                raise RuntimeError(f"mlp_silu: input is on {input.device!r} but layer {i}'s parameters "
                                   f"on {t.device!r}")
        width = w.shape[0]


def embedding(input: Any, weight: Tensor) -> Tensor:
    """y[...] = W[i[...]], rows of W (num_embeddings, dim) picked by integer indices i.
    dL/dW_r = sum of g over the positions where i == r (indices may repeat)."""
    idx = input.data if isinstance(input, Tensor) else input
    xp = weight.xp
    idx = xp.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, embedding_dim), got shape {weight.shape}")
    num, dim = weight.shape
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError(f"embedding: indices must lie in [0, {num}) for a weight of shape {weight.shape}; "
                         f"got values in [{int(idx.min())}, {int(idx.max())}]")
    out = xp.take(weight.data, idx, axis=0)

    def backward(g):
        gw = xp.zeros_like(weight.data)
        # add.at accumulates repeated indices; fancy assignment would keep only the last one.
        xp.add.at(gw, idx.reshape(-1), g.reshape(-1, dim))
        return (gw,)
    return make_node(out, (weight,), backward, "embedding")


def dropout(input: Tensor, p: float = 0.5, training: bool = True, generator: Any = None) -> Tensor:
    """y = x * m / (1 - p), m_i ~ Bernoulli(1 - p) (inverted dropout: E[y] = x).    dL/dx = g * m / (1 - p).

    ``p=0`` or ``training=False`` returns ``input`` itself. The mask is drawn from ``generator``
    (default: ``autograd.random.default_generator`` of the input's backend).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    xp, x = input.xp, input.data
    if p == 1.0:  # everything dropped; 1/(1-p) would divide by zero
        return make_node(xp.zeros_like(x), (input,), lambda g: (xp.zeros_like(g),), "dropout")
    rng = default_generator(xp) if generator is None else generator
    # Everything runs in x's memory order (N, H, W, C for a channels-last map), so that the mask
    # is drawn as the stream runs through memory and x, the mask and y are read in step.
    order = _memory_order(x)
    memory_shape = tuple(x.shape[d] for d in order) or (1,)  # (a 0-d x as one row of one)

    def in_memory_order(a: Any) -> Any:  # a view of an array laid out as x is
        return a.transpose(order).reshape(memory_shape)
    y = xp.empty_like(x)  # (in x's layout)
    xm, ym = in_memory_order(x), in_memory_order(y)
    keep = xp.empty(memory_shape, dtype=bool)  # kept as bools: a quarter of a float mask's memory
    row = math.prod(memory_shape[1:])
    if getattr(rng, "bit_generator", None) is not None:
        # u uniform on {0, ..., 2^32 - 1}: P(u >= round(p 2^32)) = 1 - p to within 2^-33. Each
        # thread draws its own rows of the one stream (autograd.random.take_uint32): the mask is
        # the same for any thread count, and the draw no longer runs on one core.
        read = take_uint32(rng, xm.size)
        threshold = xp.uint32(min(round(p * 2**32), 2**32 - 1))

        def draw(rows: slice, out: Any) -> None:
            bits = read(rows.start * row, rows.stop * row)
            xp.greater_equal(bits.reshape(out.shape), threshold, out=out)
    else:  # CuPy: P(u >= p) = 1 - p for u uniform on [0, 1)
        draw_dtype = x.dtype if x.dtype in (xp.float32, xp.float64) else xp.float32
        u = rng.random(xm.shape, dtype=draw_dtype)

        def draw(rows: slice, out: Any) -> None:
            xp.greater_equal(u[rows], p, out=out)
    scale = 1.0 / (1.0 - p)
    blocks = [slice(0, xm.shape[0]) if r is ... else r for r in row_blocks(xp, xm, _SPLIT_BYTES)]

    def forward_rows(run: list[slice]) -> None:
        for r in run:
            draw(r, keep[r])
            xp.multiply(xm[r], keep[r], out=ym[r])
            ym[r] *= scale
    run_blocks(forward_rows, blocks)

    def backward(g):
        gx = xp.empty_like(x)
        gm, gxm = in_memory_order(g), in_memory_order(gx)

        def backward_rows(run: list[slice]) -> None:
            for r in run:
                xp.multiply(gm[r], keep[r], out=gxm[r])
                gxm[r] *= scale
        run_blocks(backward_rows, blocks)
        return (gx,)
    return make_node(y, (input,), backward, "dropout")


def _linear(op: str, input: Tensor, weight: Tensor, bias: Tensor | None, silu: bool) -> Tensor:
    if weight.ndim != 2 or input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"{op}: input (*, in_features) {input.shape} does not match weight "
                         f"(out_features, in_features) {weight.shape}")
    if input.device != weight.device or (bias is not None and bias.device != weight.device):
        raise RuntimeError(f"{op}: input is on {input.device!r} but weight on {weight.device!r}"
                           + (f" and bias on {bias.device!r}" if bias is not None else ""))
    out_features, in_features = weight.shape
    if bias is not None and bias.shape != (out_features,):
        raise ValueError(f"{op}: bias must have shape ({out_features},) to match weight {weight.shape}, "
                         f"got {bias.shape}")
    lead = input.shape[:-1]
    xp = input.xp
    x2 = input.data.reshape(-1, in_features)  # (B, in), B = every leading dim folded
    w, b = weight.data, None if bias is None else bias.data
    # The rows are shared among the cores, one GEMM each (see autograd/ops/_blocks.py); little work: one GEMM.
    blocks = even_blocks(xp, x2.shape[0], _min_rows(in_features * out_features))
    y = xp.empty((x2.shape[0], out_features), dtype=xp.result_type(x2, w))
    s: Any = xp.empty_like(y) if silu else None  # the logistic of z, for the backward

    def forward_rows(run: list[slice]) -> None:
        for r in run:
            xp.matmul(x2[r], w.T, out=y[r])
            if b is not None:
                y[r] += b
            if silu:  # z -> silu(z) in place
                silu_rows(xp, y[r], y[r], s[r])
    run_blocks(forward_rows, blocks)

    def backward(g):
        g2 = g.reshape(-1, out_features)
        need_x = input.requires_grad
        need_w, need_b = weight.requires_grad, bias is not None and bias.requires_grad
        gx = xp.empty(x2.shape, dtype=g2.dtype) if need_x else None
        gz = xp.empty_like(y) if silu else g2  # dL/dz

        def backward_rows(run: list[slice]) -> tuple[Any, Any]:
            gw = gb = None
            for r in run:
                if silu:
                    silu_grad_rows(xp, g2[r], y[r], s[r], out=gz[r])
                if need_x:
                    xp.matmul(gz[r], w, out=gx[r])
                if need_w:
                    part = gz[r].T @ x2[r]
                    gw = part if gw is None else gw + part
                if need_b:  # (as in mlp_silu: a GEMV)
                    part = xp.ones(r.stop - r.start, dtype=gz.dtype) @ gz[r]
                    gb = part if gb is None else gb + part
            return gw, gb
        gw, gb = sum_runs(run_blocks(backward_rows, blocks))
        if need_w and gw is None:  # no rows at all
            gw = xp.zeros_like(w)
        if need_b and gb is None:
            gb = xp.zeros_like(b)
        return ((gx.reshape(input.shape) if need_x else None), gw) + ((gb,) if bias is not None else ())

    parents = (input, weight) + ((bias,) if bias is not None else ())
    return make_node(y.reshape(lead + (out_features,)), parents, backward, op)
