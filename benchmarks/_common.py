"""What both sides of the benchmark share: the configurations, the step timing, the memory
readings and the one-line JSON result. Standard library only: the PyTorch side imports this
from a virtual environment that has no tinydiff.

Threads must be fixed before NumPy (OpenBLAS) or PyTorch (OpenMP/MKL) is first imported, so
each worker calls ``pin_threads`` at the top, before those imports.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from typing import Any, Callable

# The architectures, exactly as tinydiff builds them by default (the tinydiff worker asserts
# that these equal `UNet().config` and the toy2d preset's MLP, so they cannot drift).
UNET = dict(in_channels=1, model_channels=32, out_channels=1, num_res_blocks=2,
            attention_resolutions=[7], dropout=0.1, channel_mult=[1, 2, 2], num_heads=4,
            num_classes=None, num_groups=8, image_size=28)
MLP = dict(data_dim=2, hidden_dim=256, num_layers=3, time_embed_dim=32)

# What the trainer uses for each (TrainConfig.mnist / TrainConfig.toy2d; asserted likewise).
TRAINING = {
    "unet": dict(optimizer="adamw", lr=2e-4, weight_decay=0.0, grad_clip=1.0, schedule="cosine",
                 timesteps=1000),
    "mlp": dict(optimizer="adam", lr=2e-3, weight_decay=0.0, grad_clip=1.0, schedule="linear",
                timesteps=1000),
}

# (model, mode, batch) rows of the table, in order.
CONFIGS = [("unet", "train", 64), ("unet", "train", 128), ("unet", "sample", 64),
           ("unet", "sample", 128), ("mlp", "train", 1024), ("mlp", "sample", 1024)]

RESULT_PREFIX = "RESULT "


def pin_threads(threads: int) -> None:
    """Ask every math library for ``threads`` threads (read when they are first imported)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def worker_args(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", choices=("unet", "mlp"), default="unet")
    ap.add_argument("--mode", choices=("train", "sample"), default="train")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="math-library threads (default 2)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true",
                    help="tinydiff only: time each op's forward and backward instead")
    ap.add_argument("--threading", choices=("engine", "blas"), default="engine",
                    help="tinydiff only: 'engine' (default) runs BLAS on one thread and spreads blocks "
                         "of work over --threads of the engine's own (autograd.ops._blocks); "
                         "'blas' leaves the engine on one thread and gives the BLAS --threads")
    ap.add_argument("--profile-clock", choices=("wall", "cpu"), default="wall",
                    help="--profile: wall-clock time, or this process's CPU time (steadier on a "
                         "shared machine, but with --threads > 1 it adds up every thread)")
    return ap.parse_args()


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def peak_rss_mb() -> float:
    """The most resident memory this process ever had, in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(step: Callable[[], Any], steps: int, warmup: int,
               sync: Callable[[], None] = lambda: None) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (all threads of this process) of each of ``steps`` calls of
    ``step`` after ``warmup`` untimed ones. CPU time is what a step costs when the machine is
    shared (other processes' time slices are not in it), but it also counts threads that
    spin while waiting for work, so the wall time is the headline number."""
    for _ in range(warmup):
        step()
    sync()
    wall, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def emit(args: argparse.Namespace, framework: str, times: tuple[list[float], list[float]],
         params: int, base_rss: float, extra: dict[str, Any]) -> None:
    """Print the one-line result the driver parses (and a readable line above it)."""
    times, cpu = times
    med = statistics.median(times)
    result = dict(framework=framework, model=args.model, mode=args.mode, batch=args.batch,
                  device=args.device, threads=args.threads, steps=len(times),
                  median_s=med, min_s=min(times), max_s=max(times), times_s=times,
                  cpu_median_s=statistics.median(cpu), cpu_s=cpu,
                  images_per_s=args.batch / med, params=params,
                  peak_rss_mb=peak_rss_mb(), base_rss_mb=base_rss, **extra)
    print(f"{framework} {args.model} {args.mode} batch {args.batch}: median {med * 1e3:.1f} ms "
          f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}; CPU {statistics.median(cpu) * 1e3:.1f}), "
          f"{params} parameters, "
          f"peak RSS {result['peak_rss_mb']:.0f} MiB (before the first step {base_rss:.0f})", flush=True)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
