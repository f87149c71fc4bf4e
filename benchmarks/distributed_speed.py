"""Steps/s of `tinydiff train`: one process with T engine threads against K processes of one
thread each (`mpiexec -n K ... --distributed`), the same global batch, side by side.

    python benchmarks/distributed_speed.py [--cores 2] [--rounds 3] [--toy-steps 150] [--mnist-steps 12]

Each round runs every configuration once, alternating, so a slow spell of a shared machine
hits both; the rate of a run is taken from its loss.csv clock over the steps after the first
few (start-up, first-touch allocation). Prints one Markdown table: median rates, and the ratio
of the two in each round (its median is the number to quote on a machine whose load swings).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = 3  # steps left out of the rate: the first steps pay for start-up


def mnist_dir() -> str:
    for c in (ROOT.parent / "shared" / "data" / "mnist", ROOT / "shared" / "data" / "mnist"):
        if c.is_dir():
            return str(c)
    sys.exit("no MNIST folder beside the checkout (../shared/data/mnist)")


def rate(log: Path) -> float:
    with open(log, newline="") as f:
        rows = [(int(r["step"]), float(r["time"])) for r in csv.DictReader(f)]
    (s0, t0), (s1, t1) = rows[SKIP - 1], rows[-1]
    return (s1 - s0) / (t1 - t0)


def run(task: str, steps: int, processes: int, threads: int, work: Path) -> float:
    out = work / f"{task}-{processes}x{threads}"
    shutil.rmtree(out, ignore_errors=True)
    args = [sys.executable, "-m", "tinydiff", "train", task, "--steps", str(steps), "--out", str(out),
            "--no-progress", "--no-preview", "--ckpt-every", str(10 * steps)]
    if task == "mnist":
        args += ["--data-dir", mnist_dir()]
    env = {**os.environ, "AUTOGRAD_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    if processes > 1:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        args = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(processes), *args, "--distributed"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    return rate(out / "loss.csv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, default=2, help="T = K = this many (default 2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--toy-steps", type=int, default=150)
    ap.add_argument("--mnist-steps", type=int, default=12)
    args = ap.parse_args()
    k = args.cores
    configs = [(task, steps, p, t) for task, steps in (("toy2d", args.toy_steps), ("mnist", args.mnist_steps))
               for p, t in ((1, k), (k, 1))]
    rates: dict[tuple, list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for c in configs:
                rates[c].append(run(c[0], c[1], c[2], c[3], Path(tmp)))
                print(f"round {r + 1}: {c[0]} {c[2]} proc x {c[3]} thr: {rates[c][-1]:.2f} steps/s",
                      file=sys.stderr, flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"{cpu}, {os.cpu_count()} CPUs; medians of {args.rounds} alternating rounds; "
          f"python {platform.python_version()}\n")
    print(f"| model (global batch) | 1 process x {k} threads | {k} processes x 1 thread "
          f"| ratio (median of rounds) | ratio in each round |")
    print("|---|---|---|---|---|")
    for task, label in (("toy2d", "toy MLP (512)"), ("mnist", "MNIST UNet (64)")):
        one = rates[next(c for c in configs if c[0] == task and c[2] == 1)]
        many = rates[next(c for c in configs if c[0] == task and c[2] == k)]
        ratios = [m / o for m, o in zip(many, one)]  # side by side in one round: the load is shared
        print(f"| {label} | {statistics.median(one):.2f} steps/s | {statistics.median(many):.2f} steps/s "
              f"| {statistics.median(ratios):.2f}x | {' '.join(f'{r:.2f}' for r in ratios)} |")


if __name__ == "__main__":
    main()
