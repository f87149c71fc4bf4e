"""Search and confirm the toy 2D recipe against the PyTorch tiny-diffusion recipe (issue 14).

Run with tinydiff's venv; the PyTorch side runs ``benchmarks/torch_toy2d.py`` in a torch venv
(``--torch-python``, default /work/torchvenv/bin/python) and is scored here, by the same judge.

    python benchmarks/toy_recipes.py trials default small ...   # run named trial groups, append rows
    python benchmarks/toy_recipes.py score FILE.npy --dataset moons
    python benchmarks/toy_recipes.py datacheck                   # torch script's data == tinydiff's?
    python benchmarks/toy_recipes.py throughput                  # step rates side by side
    python benchmarks/toy_recipes.py perfect --n 4000 --draws 20  # the judge on exact data

The judge is ``tinydiff eval RUN --sampler ddpm`` (DDPM, all 1000 steps, 4000 points = TOY_N)
for tinydiff runs and ``tinydiff.evaluate.toy2d_metrics`` on the saved .npy for the torch runs:
the same function, the same 5 fresh reference pairs, the same projections. Every trial appends
one row per dataset to ``benchmarks/results/2026-12-02-toy-recipes.md`` (``--table``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread, as `tinydiff train` sets it (tinydiff/cli.py), for the in-process step rates;
# set before NumPy loads BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from tinydiff.data.toy2d import sample_toy2d  # noqa: E402
from tinydiff.evaluate import TOY_N, pool_toy_draws, toy2d_metrics  # noqa: E402
from tinydiff.run import TrainConfig  # noqa: E402
from tinydiff.train import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TORCH_SCRIPT = ROOT / "benchmarks" / "torch_toy2d.py"
TABLE = ROOT / "benchmarks" / "results" / "2026-12-02-toy-recipes.md"
DATASETS = ("moons", "8gaussians")
HEADER = ("| trial | side | dataset | seed | command (train) | steps | train s | steps/s | "
          "sliced-W2 ratio |\n|---|---|---|---|---|---|---|---|---|\n")

# Trial groups: name -> list of (label, side, extra arguments). tinydiff arguments go to
# `tinydiff train toy2d`; torch ones to torch_toy2d.py. Steps are fixed, not seconds, so a
# busy machine changes the wall time but not the result (see `throughput` for the conversion).
GROUPS: dict[str, list[tuple[str, str, list[str]]]] = {
    "default": [("old default 256x3 b512 5000", "tinydiff",
                 ["--hidden-dim", "256", "--num-layers", "3", "--batch-size", "512", "--steps", "5000",
                  "--lr", "2e-3", "--warmup-steps", "100", "--ema-decay", "0.999",
                  "--lr-schedule", "constant"])],
    "torch": [("torch tiny-diffusion 10500 steps", "torch", ["--steps", "10500", "--threads", "1"])],
    "shape": [("128x3 b1024 9000", "tinydiff", ["--hidden-dim", "128", "--batch-size", "1024",
                                                 "--steps", "9000"]),
              ("128x3 b512 15000", "tinydiff", ["--hidden-dim", "128", "--batch-size", "512",
                                                "--steps", "15000"])],
    "cosine": [("128x3 b1024 9000 cos", "tinydiff", ["--hidden-dim", "128", "--batch-size", "1024",
                                                     "--steps", "9000", "--lr-schedule", "cosine"]),
               ("128x3 b512 15000 cos", "tinydiff", ["--hidden-dim", "128", "--batch-size", "512",
                                                     "--steps", "15000", "--lr-schedule", "cosine"]),
               ("256x3 b512 5500 cos", "tinydiff", ["--hidden-dim", "256", "--batch-size", "512",
                                                    "--steps", "5500", "--lr-schedule", "cosine"])],
    "values": [("192x4 b512 6000 cos", "tinydiff", ["--hidden-dim", "192", "--num-layers", "4",
                                                    "--steps", "6000", "--lr-schedule", "cosine"]),
               ("128x3 b1024 9000 cos v-pred", "tinydiff",
                ["--hidden-dim", "128", "--batch-size", "1024", "--steps", "9000",
                 "--lr-schedule", "cosine", "--parameterization", "v"]),
               ("128x3 b1024 9000 cos lr 5e-3", "tinydiff",
                ["--hidden-dim", "128", "--batch-size", "1024", "--steps", "9000",
                 "--lr-schedule", "cosine", "--lr", "5e-3"])],
    # Fourier features of x (input_embed_dim per coordinate, scale 25), as tiny-diffusion.
    "fourier": [("128x3 b1024 fourier128 9000 cos", "tinydiff",
                 ["--hidden-dim", "128", "--batch-size", "1024", "--input-embed-dim", "128",
                  "--steps", "9000", "--lr-schedule", "cosine"]),
                ("128x3 b1024 fourier64 9000 cos", "tinydiff",
                 ["--hidden-dim", "128", "--batch-size", "1024", "--input-embed-dim", "64",
                  "--steps", "9000", "--lr-schedule", "cosine"])],
    # At the estimated 30 s budget of the features' step cost (~ the old default's, ~5500 steps).
    "fourier-budget": [("128x3 b1024 fourier128 5500 cos", "tinydiff",
                        ["--hidden-dim", "128", "--batch-size", "1024", "--input-embed-dim", "128",
                         "--steps", "5500", "--lr-schedule", "cosine"]),
                       # The torch recipe's optimiser settings on the tinydiff MLP with features.
                       ("128x3 b1024 fourier128 9000 lr1e-3 ema.995", "tinydiff",
                        ["--hidden-dim", "128", "--batch-size", "1024", "--input-embed-dim", "128",
                         "--steps", "9000", "--lr", "1e-3", "--ema-decay", "0.995"])],
}


def _slug(extra: list[str]) -> str:
    return hashlib.sha1(" ".join(extra).encode()).hexdigest()[:10]


def tinydiff_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinydiff", *args]


def run_checked(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def run_tinydiff(dataset: str, extra: list[str], seed: int, work: Path) -> dict:
    out = work / f"td-{dataset}-s{seed}-{_slug(extra)}"
    if (out / "checkpoint.npz").exists():
        raise SystemExit(f"toy_recipes: {out} already holds a run; remove it or pick another --work")
    train = ["train", "toy2d", "--dataset", dataset, "--seed", str(seed), *extra]
    run_checked(tinydiff_cmd(*train, "--out", str(out), "--no-progress", "--no-preview"), 1800)
    last = (out / "loss.csv").read_text().splitlines()[-1].split(",")
    steps, seconds = int(last[0]), float(last[4])
    run_checked(tinydiff_cmd("eval", str(out), "--sampler", "ddpm", "--no-speed", "--no-progress",
                             "--out", str(out / "eval.json")), 1800)
    ratio = json.loads((out / "eval.json").read_text())["sw_ratio"]
    return {"command": "tinydiff " + shlex.join(train), "steps": steps, "seconds": seconds,
            "ratio": ratio}


def run_torch(dataset: str, extra: list[str], seed: int, work: Path, python: str) -> dict:
    out = work / f"torch-{dataset}-s{seed}-{_slug(extra)}.npy"
    args = ["--dataset", dataset, "--seed", str(seed), *extra]
    run_checked([python, str(TORCH_SCRIPT), *args, "--out", str(out)], 1800)
    info = json.loads(out.with_suffix(".json").read_text())
    ratio = toy2d_metrics(np.load(out), dataset).sw_ratio
    return {"command": "torch_toy2d.py " + shlex.join(args), "steps": info["steps"],
            "seconds": info["train_seconds"], "ratio": ratio}


def append_row(table: Path, label: str, side: str, dataset: str, seed: int, r: dict) -> None:
    if not table.exists():
        table.write_text(HEADER)
    rate = r["steps"] / r["seconds"] if r["seconds"] > 0 else float("nan")
    with open(table, "a") as f:
        f.write(f"| {label} | {side} | {dataset} | {seed} | `{r['command']}` | {r['steps']} | "
                f"{r['seconds']:.1f} | {rate:.0f} | {r['ratio']:.3f} |\n")


def cmd_trials(args: argparse.Namespace) -> int:
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        raise SystemExit(f"toy_recipes: unknown trial groups {unknown}; known: {', '.join(GROUPS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    for group in args.groups:
        for label, side, extra in GROUPS[group]:
            for seed in args.seeds:
                for dataset in args.datasets:
                    r = (run_tinydiff(dataset, extra, seed, args.work) if side == "tinydiff"
                         else run_torch(dataset, extra, seed, args.work, args.torch_python))
                    append_row(args.table, label, side, dataset, seed, r)
                    print(f"{label:40s} {dataset:10s} seed {seed}: {r['steps']} steps "
                          f"{r['seconds']:.1f} s  ratio {r['ratio']:.3f}", flush=True)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    x = np.load(args.file, allow_pickle=False)
    if args.draws == 1:
        print(toy2d_metrics(x, args.dataset).report())
        return 0
    # As `tinydiff eval --draws K`: draw k (the k-th of K equal chunks) against references of seed k
    pooled = pool_toy_draws([toy2d_metrics(chunk, args.dataset, seed=k)
                             for k, chunk in enumerate(np.array_split(x, args.draws))])
    print(f"{args.dataset}, {args.draws} draws of {len(x) // args.draws} points: sliced W2 ratio "
          f"{pooled['sw_ratio']:.2f}; single draws "
          + " ".join(f"{r:.2f}" for r in pooled["draw_sw_ratios"]))
    return 0


def cmd_datacheck(args: argparse.Namespace) -> int:
    """A big draw of the torch script's data, judged against tinydiff's own data: ratio ~1."""
    for dataset in DATASETS:
        out = args.work / f"data-{dataset}.npy"
        args.work.mkdir(parents=True, exist_ok=True)
        run_checked([args.torch_python, str(TORCH_SCRIPT), "--dataset", dataset, "--seed", "123",
                     "--dump-data", str(args.n), "--out", str(out)], 600)
        m = toy2d_metrics(np.load(out), dataset)
        print(f"{dataset}: torch_toy2d.py data vs tinydiff.data.toy2d, {args.n} points: sliced W2 "
              f"{m.sw:.5f}, floor {m.sw_floor:.5f}, ratio {m.sw_ratio:.3f}")
    return 0


def cmd_perfect(args: argparse.Namespace) -> int:
    """The judge of `tinydiff eval --draws K` applied to a perfect model: fresh data draws in
    place of samples, draw k against the references of seed k. What a model cannot beat."""
    for dataset in args.datasets:
        per_draw = [toy2d_metrics(sample_toy2d(dataset, args.n, np.random.default_rng([k, 555])),
                                  dataset, seed=k) for k in range(args.draws)]
        for first in sorted({min(5, args.draws), args.draws}):
            pooled = pool_toy_draws(per_draw[:first])
            print(f"{dataset}, exact data, {first} draws of {args.n} points (seeds 0-{first - 1}): "
                  f"sliced W2 ratio {pooled['sw_ratio']:.3f}", flush=True)
        ratios = np.array([m.sw_ratio for m in per_draw])
        print(f"  single draws: {' '.join(f'{r:.2f}' for r in ratios)}\n"
              f"  single-draw sd {ratios.std(ddof=1):.3f}; share of draws above 1.05: "
              f"{np.mean(ratios > 1.05):.0%}", flush=True)
    return 0


def _tinydiff_rate(extra: list[str], seconds: float) -> float:
    """Steps per second of `tinydiff train toy2d` with these options, over ~``seconds``."""
    opts = dict(zip(extra[::2], extra[1::2]))
    model = {"name": "mlp", "data_dim": 2, "hidden_dim": int(opts.get("--hidden-dim", 256)),
             "num_layers": int(opts.get("--num-layers", 3)), "time_embed_dim": 32}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig.toy2d(model=model, batch_size=int(opts.get("--batch-size", 512)),
                                progress=False, out_dir=tmp, steps=10**6, ckpt_every=10**6)
        trainer = Trainer(cfg)
        for _ in range(20):
            trainer.train_step()  # warm the allocator
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            trainer.train_step()
            n += 1
        return n / (time.perf_counter() - start)


def cmd_throughput(args: argparse.Namespace) -> int:
    """Interleave short bursts of each configuration; report median steps/s and ratios."""
    configs = {"tinydiff " + " ".join(e) if e else "tinydiff (old default)": ("td", e)
               for e in ([], *[shlex.split(c) for c in args.tinydiff])}
    configs.update({f"torch --threads {t}": ("torch", ["--threads", str(t)]) for t in args.threads})
    rates: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(args.rounds):
        for name, (side, extra) in configs.items():
            if side == "td":
                rates[name].append(_tinydiff_rate(extra, args.seconds))
            else:
                proc = run_checked([args.torch_python, str(TORCH_SCRIPT), *extra, "--seconds",
                                    str(args.seconds), "--no-sample", "--out", "/dev/null"], 600)
                rates[name].append(json.loads(proc.stdout.splitlines()[-1])["steps_per_second"])
    base = statistics.median(rates["tinydiff (old default)"])
    lines = [f"Interleaved {args.rounds} rounds of {args.seconds:g} s per configuration "
             f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"load average {os.getloadavg()[0]:.2f} at the end):", "",
             "| configuration | median steps/s | all rounds | / old default |", "|---|---|---|---|"]
    for name, r in rates.items():
        med = statistics.median(r)
        lines.append(f"| {name} | {med:.0f} | {', '.join(f'{v:.0f}' for v in r)} | {med / base:.2f} |")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--torch-python", default="/work/torchvenv/bin/python",
                   help="a Python with torch, for benchmarks/torch_toy2d.py")
    p.add_argument("--work", type=Path, default=Path("/tmp/toy-recipes"), help="runs go here")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("trials", help="run trial groups and append their rows to --table")
    t.add_argument("groups", nargs="+", help=f"groups: {', '.join(GROUPS)}")
    t.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    t.add_argument("--seeds", nargs="+", type=int, default=[0])
    t.add_argument("--table", type=Path, default=TABLE)
    s = sub.add_parser("score", help="toy2d_metrics of a saved (n, 2) .npy")
    s.add_argument("file", type=Path)
    s.add_argument("--dataset", choices=DATASETS, required=True)
    s.add_argument("--draws", type=int, default=1,
                   help="split the file into K draws, scored as `tinydiff eval --draws K` (default 1)")
    d = sub.add_parser("datacheck", help="the torch script's data against tinydiff's")
    d.add_argument("--n", type=int, default=200_000)
    h = sub.add_parser("throughput", help="step rates of tinydiff configurations and torch, interleaved")
    h.add_argument("--tinydiff", nargs="*", default=[], metavar="'OPTS'",
                   help="tinydiff configurations besides the old default, e.g. '--hidden-dim 128'")
    h.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    h.add_argument("--rounds", type=int, default=5)
    h.add_argument("--seconds", type=float, default=3.0)
    e = sub.add_parser("perfect", help="the judge on exact data draws (a perfect model)")
    e.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    e.add_argument("--n", type=int, default=TOY_N, help="points per draw (as tinydiff eval)")
    e.add_argument("--draws", type=int, default=20)
    args = p.parse_args(argv)
    if args.command == "score" and not args.file.is_file():
        p.error(f"score: {args.file} is not a file")
    return {"trials": cmd_trials, "score": cmd_score, "datacheck": cmd_datacheck,
            "throughput": cmd_throughput, "perfect": cmd_perfect}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
