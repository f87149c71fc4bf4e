"""Micro-benchmark: conv2d's im2col + GEMM against Winograd F(2x2, 3x3) (autograd/ops/winograd.py)
at the 3x3 stride-1 padding-1 convolutions of the UNets, float32, channels-last, batch 64.

For each shape and each of the three parts of a convolution (forward with bias, the input
gradient, the weight gradient with the bias gradient) both ways are timed in one process,
alternately (A, B, A, B, ...), and the median of each is reported with the median of the
per-pair ratios im2col / Winograd (above 1: Winograd is faster). Also the float32 error of
both against a float64 computation.

    OPENBLAS_NUM_THREADS=1 AUTOGRAD_NUM_THREADS=1 python -m benchmarks.winograd_micro
    OPENBLAS_NUM_THREADS=1 AUTOGRAD_NUM_THREADS=2 python -m benchmarks.winograd_micro
    OPENBLAS_NUM_THREADS=1 AUTOGRAD_NUM_THREADS=2 python -m benchmarks.winograd_micro --unet-step

``--unet-step`` times the whole step instead: the benchmark's UNet (benchmarks/_common.py),
a training step (forward, backward, AdamW) and a sampling forward, conv2d's Winograd rule on
and off (``winograd.MIN_SIZE`` out of reach) alternately, step by step, in one process.

(The engine's thread count is read once, from the environment: run once per thread count.)
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from autograd.functional import conv as conv_module
from autograd.ops import _blocks, winograd

# (H=W, C_in, C_out, uses per step): the benchmark UNet (benchmarks/_common.py UNET: 32 base
# channels, two ResBlocks per level) and the MNIST preset (TrainConfig.mnist: 16, one).
SHAPES = {
    "bench": [(28, 32, 32, 7), (28, 64, 32, 2), (28, 96, 32, 1), (28, 64, 64, 1), (14, 64, 64, 7),
              (14, 128, 64, 2), (14, 96, 64, 1), (14, 32, 64, 1), (7, 64, 64, 11), (7, 128, 64, 3)],
    "mnist": [(28, 16, 16, 4), (28, 32, 16, 1), (28, 32, 32, 1), (14, 32, 32, 4), (14, 64, 32, 1),
              (7, 32, 32, 8), (7, 64, 32, 2)],
}


def im2col_ways(x, wt, b, g):
    """The three parts of conv2d as conv.py computes them now, on NHWC arrays."""
    n, h, w, c = x.shape
    o = wt.shape[0]
    geo = conv_module._Geometry((1, 1), (1, 1), (3, 3), (h, w))
    g_mat = g.reshape(n * h * w, o)
    return {
        "forward": lambda: conv_module._correlate(x, wt.transpose(2, 3, 1, 0).reshape(9 * c, o), (3, 3), (1, 1),
                                                  (1, 1), (h, w), b),
        "input grad": lambda: conv_module._input_grad_by_flipped_conv(g, wt, (h, w), geo),
        "weight grad": lambda: conv_module._weight_grad(x, g_mat, (3, 3), (1, 1), (1, 1), (h, w), True),
    }


def winograd_ways(x, wt, b, g):
    """The same three parts by F(2x2, 3x3), filter transforms included."""
    w_flip = wt[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return {
        "forward": lambda: winograd.winograd_correlate(x, winograd.filter_transform(wt), b),
        "input grad": lambda: winograd.winograd_correlate(g, winograd.filter_transform(w_flip)),
        "weight grad": lambda: winograd.winograd_weight_grad(x, g, True),
    }


def as_nchw(part: str, result, n: int, h: int, w: int):
    """Each way's result as a float64 array, in one layout, to compare them."""
    if part == "weight grad":
        dw, db = result
        dw = np.asarray(dw)
        if dw.ndim == 2:  # conv.py's (kh*kw*C, O) matrix
            dw = dw.reshape(3, 3, -1, dw.shape[1]).transpose(3, 2, 0, 1)
        return np.concatenate([dw.ravel(), np.asarray(db).ravel()]).astype(np.float64)
    a = np.asarray(result)
    return a.reshape(n, h, w, -1).astype(np.float64).ravel() if a.ndim == 2 else a.transpose(0, 2, 3, 1).ravel()


def alternate(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Median ms of a, of b, and the median of the per-pair ratios a/b, timed A, B, A, B, ..."""
    a(), b()  # warm: first-touch of buffers, thread pool start
    ta, tb = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    ratios = [x / y for x, y in zip(ta, tb)]
    return 1e3 * statistics.median(ta), 1e3 * statistics.median(tb), statistics.median(ratios)


def float32_error(part: str, shape: tuple[int, int, int], n: int, rng) -> tuple[float, float]:
    """Relative error ||y32 - y64|| / ||y64|| of im2col and of Winograd in float32."""
    size, c, o = shape
    x = rng.standard_normal((n, size, size, c))
    wt = rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)
    b = rng.standard_normal(o)
    g = rng.standard_normal((n, size, size, o))
    exact = as_nchw(part, im2col_ways(x, wt, b, g)[part](), n, size, size)
    f32 = [a.astype(np.float32) for a in (x, wt, b, g)]
    errs = []
    for ways in (im2col_ways(*f32), winograd_ways(*f32)):
        got = as_nchw(part, ways[part](), n, size, size)
        errs.append(float(np.linalg.norm(got - exact) / np.linalg.norm(exact)))
    return errs[0], errs[1]


def unet_steps(batch: int, repeat: int) -> None:
    """Median ms of the UNet's training step and sampling forward, Winograd off and on, alternated."""
    from autograd import Tensor, no_grad
    from autograd.functional import mse_loss
    from autograd.optim import AdamW
    from tinydiff.models import UNet

    rng = np.random.default_rng(0)
    model = UNet()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = AdamW(params, lr=2e-4)
    x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
    target = rng.standard_normal(x.shape, dtype=np.float32)
    t = rng.integers(0, 1000, size=batch)

    def train() -> None:
        model.train()
        loss = mse_loss(model(Tensor(x), t), Tensor(target))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    @no_grad()
    def sample() -> None:
        model.eval()
        model(Tensor(x), t)

    on_size = winograd.MIN_SIZE

    def with_rule(fn: Callable[[], None], size: int) -> Callable[[], None]:
        def run() -> None:
            winograd.MIN_SIZE = size
            try:
                fn()
            finally:
                winograd.MIN_SIZE = on_size
        return run

    print(f"benchmark UNet, batch {batch}, {_blocks.num_threads()} engine thread(s); median of {repeat} "
          f"alternated pairs (ms)")
    for name, fn in (("train step", train), ("sample forward", sample)):
        off, on, ratio = alternate(with_rule(fn, 1 << 30), with_rule(fn, on_size), repeat)
        print(f"  {name:<15} im2col only {off:8.1f}  with Winograd {on:8.1f}  ratio {ratio:5.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=tuple(SHAPES), default="bench", help="whose shapes (default bench)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=21, help="A/B pairs per measurement (default 21)")
    ap.add_argument("--parts", default="forward,input grad,weight grad")
    ap.add_argument("--block-bytes", type=int, default=None,
                    help="winograd._BLOCK_BYTES for this run (default: the module's)")
    ap.add_argument("--error", action="store_true", help="also the float32 relative errors")
    ap.add_argument("--unet-step", action="store_true", help="time the whole UNet step instead (see above)")
    args = ap.parse_args()
    if args.unet_step:
        unet_steps(args.batch, args.repeat)
        return
    if args.block_bytes is not None:
        winograd._BLOCK_BYTES = args.block_bytes
    parts = [p.strip() for p in args.parts.split(",")]
    rng = np.random.default_rng(0)
    print(f"{args.net} UNet shapes, batch {args.batch}, float32 NHWC, {_blocks.num_threads()} engine thread(s), "
          f"Winograd blocks of {winograd._BLOCK_BYTES} B; median of {args.repeat} alternated pairs (ms)")
    print(f"{'shape':<18}{'part':<13}{'im2col':>9}{'winograd':>10}{'ratio':>8}" + ("   f32 rel. error im2col / winograd"
                                                                                     if args.error else ""))
    totals = {p: [0.0, 0.0] for p in parts}
    for size, c, o, uses in SHAPES[args.net]:
        x = rng.standard_normal((args.batch, size, size, c), dtype=np.float32)
        wt = (rng.standard_normal((o, c, 3, 3), dtype=np.float32) / np.float32(np.sqrt(9 * c)))
        b = rng.standard_normal(o, dtype=np.float32)
        g = rng.standard_normal((args.batch, size, size, o), dtype=np.float32)
        a_ways, b_ways = im2col_ways(x, wt, b, g), winograd_ways(x, wt, b, g)
        for part in parts:
            ta, tb, ratio = alternate(a_ways[part], b_ways[part], args.repeat)
            totals[part][0] += uses * ta
            totals[part][1] += uses * tb
            line = f"{size}x{size} {c:>3}->{o:<3} x{uses:<3}{part:<13}{ta:9.2f}{tb:10.2f}{ratio:8.2f}"
            if args.error:
                e1, e2 = float32_error(part, (size, c, o), 4, rng)
                line += f"   {e1:.1e} / {e2:.1e}"
            print(line, flush=True)
    print("per step (each shape times its uses):")
    for part, (ta, tb) in totals.items():
        print(f"  {part:<13} im2col {ta:8.1f}  winograd {tb:8.1f}  ratio {ta / tb:5.2f}")


if __name__ == "__main__":
    main()
