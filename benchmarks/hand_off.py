"""What a hand-off to the engine's threads costs, and what the toy MLP saves by making fewer.

    python benchmarks/hand_off.py [--rounds 9]

Three measurements on two engine threads (BLAS on one thread each), interleaved round by
round, medians printed:

1. one hand-off of nothing through ``_blocks.run_blocks`` (a ThreadPoolExecutor's submit and
   result, and the wake of the other core's sleeping thread);
2. the toy MLP's hidden layers (batch 1024, widths 34 -> 256 -> 256 -> 256), forward and
   backward: three ``linear_silu`` ops against one ``mlp_silu``;
3. its output layer (256 -> 2) forward and backward, its rows shared among the threads or not
   (``linear._MIN_MACS``).

Results: benchmarks/results/autograd-measurements.md#a-hand-off-per-run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("AUTOGRAD_NUM_THREADS", "2")
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import importlib  # noqa: E402
from autograd.functional.linear import linear, linear_silu, mlp_silu  # noqa: E402
from autograd.malloc import keep_freed_host_memory  # noqa: E402
from autograd.ops._blocks import run_blocks  # noqa: E402
from autograd.tensor import Tensor  # noqa: E402

linear_module = importlib.import_module("autograd.functional.linear")  # (F.linear is the function)


def per_call_us(fn, calls: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    args = ap.parse_args()
    keep_freed_host_memory()
    rng = np.random.default_rng(0)

    def nothing(_: object) -> None:
        return None
    two_blocks = [slice(0, 1), slice(1, 2)]

    x = Tensor(rng.standard_normal((1024, 34)).astype(np.float32))
    widths = [34, 256, 256, 256]
    ws = [Tensor((rng.standard_normal((b, a)) / np.sqrt(a)).astype(np.float32), requires_grad=True)
          for a, b in zip(widths[:-1], widths[1:])]
    bs = [Tensor(np.zeros(b, np.float32), requires_grad=True) for b in widths[1:]]
    h = Tensor(rng.standard_normal((1024, 256)).astype(np.float32))
    w_out = Tensor((rng.standard_normal((2, 256)) / 16).astype(np.float32), requires_grad=True)
    b_out = Tensor(np.zeros(2, np.float32), requires_grad=True)

    def three_ops() -> None:
        y = x
        for w, b in zip(ws, bs):
            y = linear_silu(y, w, b)
        y.sum().backward()

    def one_op() -> None:
        mlp_silu(x, ws, bs).sum().backward()

    def out_layer(split: bool) -> None:
        saved = linear_module._MIN_MACS
        linear_module._MIN_MACS = 0 if split else saved
        try:
            linear(h, w_out, b_out).sum().backward()
        finally:
            linear_module._MIN_MACS = saved

    cases = {
        "hand-off of nothing, run_blocks (us)": (lambda: run_blocks(nothing, two_blocks), 2000),
        "MLP hidden layers f+b, 3 x linear_silu (us)": (three_ops, 100),
        "MLP hidden layers f+b, 1 x mlp_silu (us)": (one_op, 100),
        "output layer 256->2 f+b, rows shared (us)": (lambda: out_layer(True), 500),
        "output layer 256->2 f+b, one thread (us)": (lambda: out_layer(False), 500),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (fn, calls) in cases.items():
            times[name].append(per_call_us(fn, calls))
    print(f"{os.cpu_count()} CPUs, engine threads {os.environ['AUTOGRAD_NUM_THREADS']}, "
          f"median of {args.rounds} interleaved rounds")
    for name, values in times.items():
        print(f"  {name:<48} {statistics.median(values):9.1f}   (min {min(values):.1f}, max {max(values):.1f})")
    med = {name: statistics.median(v) for name, v in times.items()}
    names = list(cases)
    for a, b in ((1, 2), (3, 4)):
        print(f"  ratio {names[a].split(',')[1].split('(')[0].strip()} / {names[b].split(',')[1].split('(')[0].strip()}: "
              f"{med[names[a]] / med[names[b]]:.2f}")


if __name__ == "__main__":
    main()
