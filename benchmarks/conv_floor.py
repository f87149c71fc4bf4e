"""The floor under the benchmark UNet's step on NumPy: the bare GEMMs its convolutions cannot
avoid and the memory passes its group norms cannot avoid, each timed on this machine.

Issue 16 asks every UNet row to reach 1.0x torch, or a note that shows from measurements the
floor each remaining op sits on. This script

1. runs one training step of the benchmark UNet (benchmarks/_common.py) with ``conv2d`` and
   ``group_norm_silu`` wrapped, to record every call's shapes (nothing is timed there);
2. for each convolution, times the matrix products the engine's algorithm needs and nothing else
   (im2col: one (M, K) @ (K, O) per part; Winograd F(2x2, 3x3): 16 products (P, C) @ (C, O)),
   preallocated, with ``np.matmul(out=)`` and BLAS on ``--threads`` threads: no im2col, no
   transforms, no bias, no copies. Forward, input gradient (where the input needs one) and
   weight gradient, as ``autograd/functional/conv.py`` dispatches them;
3. for each group norm + SiLU, counts the fewest passes over memory a fused kernel needs
   (forward: read x, write y; backward: read x and dy, write dx) at the copy bandwidth measured
   with ``--threads`` threads.

The sums are lower bounds for what tinydiff's convolutions and group norms can cost with this
BLAS: compare them with the profile of ``benchmarks/run.py`` and with torch's whole step.

    OPENBLAS_NUM_THREADS=2 python benchmarks/conv_floor.py --batch 64
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--threads", type=int, default=2, help="BLAS threads for the bare GEMMs (default 2)")
ap.add_argument("--repeat", type=int, default=5, help="timings per GEMM, median kept (default 5)")
ap.add_argument("--mlp", action="store_true",
                help="instead: the bare GEMMs of the toy MLP's training step (benchmarks/_common.py "
                     "MLP) at --batch (use 1024, the benchmark's)")
args = ap.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402  (after the thread variables)
from _common import MLP, UNET  # noqa: E402

import autograd.functional as F  # noqa: E402
import tinydiff.models.unet as unet_module  # noqa: E402
from autograd.ops import winograd  # noqa: E402
from autograd.tensor import Tensor  # noqa: E402


def record_shapes() -> tuple[Counter, Counter]:
    """One training step's calls: (n, h, w, c, o, kh, kw, stride, padding, winograd, needs dx)
    -> count for the convolutions, input elements -> count for the group norms."""
    convs: Counter = Counter()
    norms: Counter = Counter()
    conv2d, gn_silu = F.conv2d, unet_module.group_norm_silu

    def conv_spy(input, weight, bias=None, stride=1, padding=0, *a, **k):
        out = conv2d(input, weight, bias, stride, padding, *a, **k)
        n, c, h, w = input.shape
        o, _, kh, kw = weight.shape
        s = stride if isinstance(stride, int) else stride[0]
        p = padding if isinstance(padding, int) else padding[0]
        by_w = winograd.use_winograd(np, (kh, kw), (s, s), (p, p), (h, w), c, o)
        convs[(n, h, w, c, o, kh, kw, s, p, by_w, input.requires_grad)] += 1
        return out

    def gn_spy(x, *a, **k):
        norms[int(np.prod(x.shape))] += 1
        return gn_silu(x, *a, **k)

    F.conv2d, unet_module.group_norm_silu = conv_spy, gn_spy
    try:
        model = unet_module.UNet(**UNET)
        model.train()
        rng = np.random.default_rng(0)
        shape = (args.batch, UNET["in_channels"], UNET["image_size"], UNET["image_size"])
        x = rng.standard_normal(shape).astype(np.float32)
        t = rng.integers(0, 1000, args.batch)
        out = model(Tensor(x), t)
        (out * out).sum().backward()
    finally:
        F.conv2d, unet_module.group_norm_silu = conv2d, gn_silu
    return convs, norms


def median_seconds(fn) -> float:
    fn()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_seconds(m: int, k: int, n: int, count: int = 1) -> float:
    """Median time of ``count`` products (m, k) @ (k, n) into preallocated output, float32."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((count, m, k), dtype=np.float32)
    b = rng.standard_normal((count, k, n), dtype=np.float32)
    out = np.empty((count, m, n), np.float32)

    def run() -> None:
        for i in range(count):
            np.matmul(a[i], b[i], out=out[i])
    return median_seconds(run)


def conv_floor(key: tuple) -> tuple[float, float, float, float]:
    """(forward, input grad, weight grad) bare-GEMM seconds and the useful GFLOP of one call."""
    n, h, w, c, o, kh, kw, s, p, by_w, needs_dx = key
    ho, wo = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    flop = 2.0 * n * ho * wo * o * c * kh * kw * (3 if needs_dx else 2)
    if by_w:
        tiles = n * ((ho + 1) // 2) * ((wo + 1) // 2)
        fwd = gemm_seconds(tiles, c, o, 16)
        dx = gemm_seconds(tiles, o, c, 16) if needs_dx else 0.0
        dw = gemm_seconds(c, tiles, o, 16)
    else:
        m, k = n * ho * wo, c * kh * kw
        fwd = gemm_seconds(m, k, o)
        dx = gemm_seconds(m, o, k) if needs_dx else 0.0
        dw = gemm_seconds(k, m, o)
    return fwd, dx, dw, flop / 1e9


def copy_bandwidth() -> float:
    """Bytes per second moved (read + write) by ``--threads`` threads copying halves of 256 MB."""
    src = np.ones(64 << 20, np.float32)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(len(src)), args.threads)
    bounds = [(int(q[0]), int(q[-1]) + 1) for q in parts]
    pool = ThreadPoolExecutor(args.threads)

    def run() -> None:
        list(pool.map(lambda b: np.copyto(dst[b[0]:b[1]], src[b[0]:b[1]]), bounds))
    return 2 * src.nbytes / median_seconds(run)


def mlp_floor() -> None:
    """The MLP's products: forward h @ W per layer, backward dW = h^T g per layer and
    dx = g W^T for every layer but the first (its input needs no gradient)."""
    widths = [MLP["data_dim"] + MLP["time_embed_dim"]] + [MLP["hidden_dim"]] * MLP["num_layers"]
    widths.append(MLP["data_dim"])
    b = args.batch
    fwd = dw = dx = 0.0
    flop = 0.0
    for i, (k, n) in enumerate(zip(widths[:-1], widths[1:])):
        fwd += gemm_seconds(b, k, n)
        dw += gemm_seconds(k, b, n)
        dx += gemm_seconds(b, n, k) if i else 0.0
        flop += 2.0 * b * k * n * (3 if i else 2)
    total = fwd + dw + dx
    print(f"toy MLP {widths}, training step, batch {b}, float32, BLAS threads {args.threads}")
    print(f"FLOOR MLP training step: bare GEMMs fwd {1e3 * fwd:.2f} + dW {1e3 * dw:.2f} + dx "
          f"{1e3 * dx:.2f} = {1e3 * total:.2f} ms ({flop / 1e9:.3f} GFLOP, "
          f"{flop / total / 1e9:.0f} GFLOP/s); sampling forward {1e3 * fwd:.2f} ms")


def main() -> None:
    if args.mlp:
        mlp_floor()
        return
    convs, norms = record_shapes()
    peak = 2 * 2048**3 / gemm_seconds(2048, 2048, 2048) / 1e9
    print(f"benchmark UNet, training step, batch {args.batch}, float32, BLAS threads {args.threads}; "
          f"2048^3 GEMM {peak:.0f} GFLOP/s")
    print(f"{'conv (H, C->O, k, algorithm)':<38}{'calls':>6}{'GFLOP':>8}{'fwd ms':>9}{'dx ms':>8}"
          f"{'dW ms':>8}{'GFLOP/s':>9}")
    totals = [0.0, 0.0, 0.0]
    gflop_total = 0.0
    for key, calls in sorted(convs.items(), key=lambda kv: (-kv[0][1], kv[0][3], kv[0][4])):
        fwd, dx, dw, gflop = conv_floor(key)
        n, h, w, c, o, kh, kw, s, p, by_w, _ = key
        name = f"{h}x{w} {c}->{o} {kh}x{kw}/{s} {'winograd' if by_w else 'im2col'}"
        seconds = fwd + dx + dw
        for i, v in enumerate((fwd, dx, dw)):
            totals[i] += calls * v
        gflop_total += calls * gflop
        print(f"{name:<38}{calls:6d}{calls * gflop:8.2f}{1e3 * calls * fwd:9.1f}{1e3 * calls * dx:8.1f}"
              f"{1e3 * calls * dw:8.1f}{gflop / seconds:9.0f}")
    conv_ms = 1e3 * sum(totals)
    print(f"{'convolutions: bare GEMMs':<38}{sum(convs.values()):6d}{gflop_total:8.2f}"
          f"{1e3 * totals[0]:9.1f}{1e3 * totals[1]:8.1f}{1e3 * totals[2]:8.1f}   total {conv_ms:.0f} ms")
    bw = copy_bandwidth()
    norm_bytes = sum(calls * elems * 4 * 5 for elems, calls in norms.items())
    norm_ms = 1e3 * norm_bytes / bw
    print(f"group norm + SiLU: {sum(norms.values())} calls, 5 passes, {norm_bytes / 1e9:.2f} GB at "
          f"{bw / 1e9:.1f} GB/s copy bandwidth: {norm_ms:.0f} ms")
    print(f"FLOOR training step: conv {conv_ms:.0f} ms + group norm {norm_ms:.0f} ms = "
          f"{conv_ms + norm_ms:.0f} ms at batch {args.batch}")
    fwd_ms, norm_fwd_ms = 1e3 * totals[0], norm_ms * 2 / 5   # the forward's 2 of the 5 passes
    print(f"FLOOR sampling forward: conv {fwd_ms:.0f} ms + group norm {norm_fwd_ms:.0f} ms = "
          f"{fwd_ms + norm_fwd_ms:.0f} ms at batch {args.batch}")


if __name__ == "__main__":
    main()
