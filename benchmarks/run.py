"""tinydiff vs PyTorch, side by side: one table of step times, ratios and peak memory.

    python benchmarks/run.py --device cpu [--threads 2] [--steps 10] [--torch-python PATH]

Every configuration runs in a fresh process per framework (so ru_maxrss is that
configuration's peak, and no library's idle threads slow the other), tinydiff right before
PyTorch, with the same thread count. Then tinydiff's step is profiled by op (a separate
process: the timers are not in the timed runs). ``--markdown`` prints the table as Markdown.
``--baseline-root DIR`` times a second checkout's engine in the same rounds, between the two,
for a before/after table measured side by side (``git archive COMMIT | tar -x -C DIR``).

The PyTorch side runs with ``--torch-python`` (default: $TORCH_PYTHON, else this
interpreter), which needs only torch: e.g. a venv made with ``pip install torch==2.13.0``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _common import CONFIGS, RESULT_PREFIX  # noqa: E402

PROFILED = [("unet", "train", 64), ("unet", "sample", 64), ("mlp", "train", 1024)]


def run_worker(python: str, script: str, model: str, mode: str, batch: int, args: argparse.Namespace,
               prefix: str = RESULT_PREFIX, extra: tuple[str, ...] = (), root: str | None = None
               ) -> tuple[dict, str]:
    """Run one worker process; return its parsed result line and its whole output. ``root``: the
    checkout whose benchmarks/train_step.py (and so whose engine) the tinydiff side runs."""
    steps = args.steps if model == "unet" else args.mlp_steps
    here = HERE if script == "torch_reference.py" else os.path.join(root or args.tinydiff_root, "benchmarks")
    cmd = [python, os.path.join(here, script), "--model", model, "--mode", mode, "--batch", str(batch),
           "--steps", str(steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--threading", args.threading, "--device", args.device, *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    for line in proc.stdout.splitlines():
        if line.startswith(prefix):
            return json.loads(line[len(prefix):]), proc.stdout
    sys.exit(f"no {prefix!r} line from: {' '.join(cmd)}\n{proc.stdout}")


def pool_rounds(results: list[dict]) -> dict:
    """One result from several processes of the same configuration: all their steps pooled
    (median, min, max over all of them), the largest peak memory."""
    pooled = dict(results[0])
    times = [t for r in results for t in r["times_s"]]
    cpu = [t for r in results for t in r["cpu_s"]]
    pooled.update(times_s=times, cpu_s=cpu, median_s=statistics.median(times), min_s=min(times),
                  max_s=max(times), cpu_median_s=statistics.median(cpu),
                  images_per_s=pooled["batch"] / statistics.median(times),
                  peak_rss_mb=max(r["peak_rss_mb"] for r in results),
                  base_rss_mb=min(r["base_rss_mb"] for r in results))
    return pooled


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def fmt_time(r: dict) -> str:
    return f"{r['median_s'] * 1e3:.0f} ({r['min_s'] * 1e3:.0f}-{r['max_s'] * 1e3:.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed UNet steps per configuration (default 10)")
    ap.add_argument("--mlp-steps", type=int, default=50, help="timed MLP steps (default 50)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1,
                    help="processes per configuration and framework, alternating (default 1); "
                         "their steps are pooled")
    ap.add_argument("--threading", choices=("engine", "blas"), default="engine",
                    help="tinydiff's threads: the engine's own over blocks, with BLAS on one thread "
                         "(default), or the BLAS's (see train_step.py --help)")
    ap.add_argument("--only", default="", help="comma-separated subset, e.g. 'unet-train-64,mlp-train-1024'")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--tinydiff-root", default=ROOT,
                    help="checkout whose engine the tinydiff side runs (its benchmarks/train_step.py), "
                         "e.g. an older commit unpacked with git archive, for before/after tables")
    ap.add_argument("--baseline-root", default="",
                    help="a second checkout (e.g. the commit before a change) timed in the same rounds, "
                         "between tinydiff and torch: adds 'before' and 'after/before' columns")
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON") or sys.executable,
                    help="a Python with torch for the PyTorch side (default: $TORCH_PYTHON, else this one)")
    args = ap.parse_args()

    configs = CONFIGS
    if args.only:
        wanted = set(args.only.split(","))
        configs = [c for c in CONFIGS if "-".join(map(str, c)) in wanted]
    load_before = load()
    rows = []
    baselines: dict[tuple, dict] = {}
    for model, mode, batch in configs:
        print(f"running {model} {mode} batch {batch} ...", file=sys.stderr, flush=True)
        ours_runs, base_runs, theirs_runs = [], [], []
        for _ in range(args.rounds):  # alternate, so that a change in the machine's load hits both
            ours_runs.append(run_worker(sys.executable, "train_step.py", model, mode, batch, args)[0])
            if args.baseline_root:
                base_runs.append(run_worker(sys.executable, "train_step.py", model, mode, batch, args,
                                            root=args.baseline_root)[0])
            theirs_runs.append(run_worker(args.torch_python, "torch_reference.py", model, mode, batch, args)[0])
        ours, theirs = pool_rounds(ours_runs), pool_rounds(theirs_runs)
        if base_runs:
            baselines[(model, mode, batch)] = pool_rounds(base_runs)
        if ours["params"] != theirs["params"]:
            sys.exit(f"{model}: parameter counts differ: tinydiff {ours['params']}, torch {theirs['params']}")
        rows.append((model, mode, batch, ours, theirs))
    load_after = load()

    first = rows[0][3], rows[0][4]
    blas = first[0]["blas"]
    blas_text = f"{blas['name']} {blas['version']} (kernel {blas['corename']}, {blas['threads']} threads"
    blas_text += f", OPENBLAS_CORETYPE={blas['OPENBLAS_CORETYPE']})" if blas["OPENBLAS_CORETYPE"] else ")"
    print(f"date: {datetime.datetime.now().isoformat(timespec='minutes')}")
    print(f"machine: {machine()}; load average before/after: {load_before} / {load_after}")
    if os.path.realpath(args.tinydiff_root) != os.path.realpath(ROOT):
        print(f"tinydiff engine from: {args.tinydiff_root}")
    if args.baseline_root:
        print(f"before: the engine of {args.baseline_root}, timed in the same rounds")
    print(f"tinydiff: Python {platform.python_version()}, NumPy BLAS {blas_text}, "
          f"engine threads {first[0]['engine_threads']} (--threading {args.threading})")
    print(f"torch: {first[1]['torch']}, {first[1]['torch_threads']} threads, {first[1]['torch_blas']}")
    print(f"device {args.device}, float32, {args.threads} threads each; times in ms per step: "
          f"median (min-max) of {args.rounds} x {args.steps} UNet / {args.rounds} x {args.mlp_steps} MLP "
          f"steps, {args.warmup} warm-up steps per process")
    print("params: " + ", ".join(sorted({f"{r[0]} {r[3]['params']:,} (both)" for r in rows})))
    header = ["step", "tinydiff ms", "torch ms", "ratio", "img/s tinydiff", "img/s torch",
              "peak RSS MiB tinydiff / torch", "step memory MiB tinydiff / torch (ratio)"]
    table = []
    for model, mode, batch, ours, theirs in rows:
        step_ours = ours["peak_rss_mb"] - ours["base_rss_mb"]
        step_theirs = theirs["peak_rss_mb"] - theirs["base_rss_mb"]
        table.append([f"{model} {mode} b{batch}", fmt_time(ours), fmt_time(theirs),
                      f"{ours['median_s'] / theirs['median_s']:.2f}x",
                      f"{ours['images_per_s']:.0f}", f"{theirs['images_per_s']:.0f}",
                      f"{ours['peak_rss_mb']:.0f} / {theirs['peak_rss_mb']:.0f}",
                      f"{step_ours:.0f} / {step_theirs:.0f} ({step_ours / max(step_theirs, 1):.2f}x)"])
    if args.device == "cuda":
        header.append("GPU peak MiB tinydiff / torch")
        for row, (_, _, _, ours, theirs) in zip(table, rows):
            row.append(f"{ours.get('gpu_peak_mb', 0):.0f} / {theirs.get('gpu_peak_mb', 0):.0f}")
    if baselines:
        header[1:4] = ["tinydiff ms", "before ms", "torch ms", "ratio", "before/torch", "after/before"]
        for row, (model, mode, batch, ours, theirs) in zip(table, rows):
            base = baselines[(model, mode, batch)]
            row[1:4] = [row[1], fmt_time(base), row[2], row[3], f"{base['median_s'] / theirs['median_s']:.2f}x",
                        f"{ours['median_s'] / base['median_s']:.3f}"]
    print_table(header, table, args.markdown)
    print("step memory = peak RSS minus RSS just before the first step (model, optimizer and "
          "libraries already loaded; torch's import alone is ~250 MiB of the peak).")

    if args.no_profile or args.device != "cpu":
        return
    for model, mode, batch in PROFILED:
        if args.only and (model, mode, batch) not in configs:
            continue
        prof, _ = run_worker(sys.executable, "train_step.py", model, mode, batch, args,
                             prefix="PROFILE ", extra=("--profile",))
        print(f"\ntinydiff profile, {model} {mode} b{batch}: {prof['total_ms']:.0f} ms per step "
              f"(timers on; mean of {args.steps if model == 'unet' else args.mlp_steps})")
        total = prof["total_ms"]
        body = [[name, f"{f:.1f}", f"{b:.1f}", f"{(f + b) / total:.0%}"] for name, f, b in prof["rows"]]
        print_table(["where", "forward ms", "backward ms", "share"], body, args.markdown)
        print("top ops (calls/step: forward + backward ms): "
              + "; ".join(f"{o} x{c}: {f:.1f} + {b:.1f}" for o, c, f, b in prof["top"]))


def print_table(header: list[str], rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in [header] + rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


if __name__ == "__main__":
    main()
