"""Micro-benchmark: conv2d forward and backward, fast (im2col + GEMM, channels-last) vs the
readable reference (a loop of einsums over kernel offsets), and conv2d's two ways to the input
gradient (flipped-kernel convolution of the zero-dilated gradient vs col2im). Medians, in ms.

    python -m benchmarks.conv_micro [--repeat 7] [--batch 64] [--channels 64] [--size 28]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from autograd import Tensor
from autograd.functional import conv as conv_module
from autograd.functional.conv import conv2d
from autograd.functional.conv_reference import conv2d_reference


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def bench(op, n: int, c: int, size: int, stride: int, repeat: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    # Channels-last memory seen as NCHW, as conv2d's own outputs are.
    x = Tensor(rng.standard_normal((n, size, size, c), dtype=np.float32).transpose(0, 3, 1, 2),
               requires_grad=True)
    w = Tensor(0.05 * rng.standard_normal((c, c, 3, 3), dtype=np.float32), requires_grad=True)
    b = Tensor(np.zeros(c, dtype=np.float32), requires_grad=True)
    y = op(x, w, b, stride, 1)
    g = np.ascontiguousarray(rng.standard_normal(y.shape, dtype=np.float32).transpose(0, 2, 3, 1))
    g = g.transpose(0, 3, 1, 2)
    fwd = median_ms(lambda: op(x, w, b, stride, 1), repeat)
    bwd = median_ms(lambda: y._backward(g), repeat)  # the node's backward alone: dx, dW, db
    return fwd, bwd


def dx_by_dilated_flipped_conv(g, wt, hw, geo):
    """dL/dx of a strided conv as the stride-1 flipped-kernel conv of g dilated with zeros."""
    (sh, sw), (ph, pw), (kh, kw), (ho, wo) = geo
    full = (hw[0] + 2 * ph - kh + 1, hw[1] + 2 * pw - kw + 1)  # the stride-1 output size
    g_up = np.zeros((g.shape[0], *full, g.shape[3]), dtype=g.dtype)
    g_up[:, :sh * (ho - 1) + 1:sh, :sw * (wo - 1) + 1:sw] = g
    return conv_module._input_grad_by_flipped_conv(g_up, wt, hw, geo._replace(stride=(1, 1), out_hw=full))


def bench_input_grad(n: int, c: int, size: int, stride: int, repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    ho = (size + 2 - 3) // stride + 1
    g = rng.standard_normal((n, ho, ho, c), dtype=np.float32)
    wt = rng.standard_normal((c, c, 3, 3), dtype=np.float32)
    geo = conv_module._Geometry((stride, stride), (1, 1), (3, 3), (ho, ho))
    ways = {"flipped conv": dx_by_dilated_flipped_conv, "col2im": conv_module._input_grad_by_col2im}
    results = [way(g, wt, (size, size), geo) for way in ways.values()]
    np.testing.assert_allclose(results[0], results[1], rtol=1e-3, atol=1e-3)
    return {name: median_ms(lambda: way(g, wt, (size, size), geo), repeat) for name, way in ways.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    ops = [("fast", conv2d)] + ([] if args.skip_reference else [("reference", conv2d_reference)])
    print(f"N={args.batch} C_in=C_out={args.channels} {args.size}x{args.size}, 3x3 kernel, padding 1, "
          f"float32, median of {args.repeat} (ms)")
    for stride in (1, 2):
        for name, op in ops:
            fwd, bwd = bench(op, args.batch, args.channels, args.size, stride, args.repeat)
            print(f"  stride {stride}  {name:<9}  forward {fwd:8.1f}  backward {bwd:8.1f}")
    print("input gradient alone (conv2d uses the flipped conv at stride 1, col2im at stride 2):")
    for stride in (1, 2):
        times = bench_input_grad(args.batch, args.channels, args.size, stride, args.repeat)
        print(f"  stride {stride}  " + "  ".join(f"{name} {ms:8.1f}" for name, ms in times.items()))


if __name__ == "__main__":
    main()
