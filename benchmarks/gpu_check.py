"""The whole GPU path of tinydiff, checked in one call on a machine with a CUDA GPU.

    python benchmarks/gpu_check.py OUT_DIR [--data-dir MNIST] [--budget 440] [--dry-run]

Meant for a short window on a GPU machine where nothing can be installed (it needs only what
such an image has: Python, NumPy, CuPy, PyTorch with CUDA, optionally mpi4py). The checkout is
put on the path with PYTHONPATH; nothing is pip-installed. In order, each step with its own
timeout inside one overall budget (default 440 s: under 8 minutes in all):

  preflight     Python/NumPy/CuPy/torch versions, a CuPy kernel on the device, torch.cuda, the
                other imports (scipy, matplotlib, tqdm, pytest, hypothesis; --deps DIR adds a
                carried folder of packages to the path), the MNIST folder, OUT_DIR writable:
                any failure stops here at once (exit 2)
  cupy-tests    the CuPy test suite: pytest -m cuda (tests/test_cuda.py and every cupy case)
  mnist-train   tinydiff train mnist --device cuda, a short run (steps/s)
  mnist-sample  tinydiff sample, DDIM-50 (images/s)
  nccl          one --distributed training run over NCCL (mpiexec -n 1, or MPI's singleton)
  bench         benchmarks/run.py --device cuda against torch on CUDA (Markdown table)
  mnist-eval    tinydiff eval: FID and class balance on the judging classifier (give
                --classifier, or the cached one is used; training one first costs minutes)

Every step's output goes to OUT_DIR/<step>.log, and OUT_DIR/summary.md (a table) and
summary.json say what passed, what failed and the numbers. A failure is printed at once, with
the tail of its log, and the steps that need its output are skipped; the exit status is 1 if
any step failed. ``--dry-run`` (for a machine without a GPU) checks everything that can be
checked there: that every command parses (tinydiff's own parser, pytest's collection of the
CUDA tests, the benchmark's --help), the data and the output folder, and writes the plan as
the summary, running nothing on a device.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUDGET = 440.0  # seconds for all steps; preflight and start-up add well under a minute
FAILED, PASSED, SKIPPED, TIMEOUT, PLANNED = "FAILED", "passed", "skipped", "TIMEOUT", "planned"
# What the steps import besides NumPy/CuPy/torch, and who needs it: a GPU image may lack some.
REQUIRED = {"scipy": "tinydiff itself (the CLI, FID)", "matplotlib": "tinydiff's figures",
            "tqdm": "tinydiff's progress bars", "pytest": "the CuPy test suite",
            "hypothesis": "the CuPy test suite"}
EXTRA_PATH: list[str] = []  # --deps: folders of packages carried to the machine, put on the path


@dataclass
class Step:
    name: str
    command: list[str]
    timeout: float                      # seconds, at most; less if the budget runs short
    needs: tuple[str, ...] = ()         # steps whose success this one needs
    status: str = PLANNED
    seconds: float = 0.0
    numbers: dict = field(default_factory=dict)
    note: str = ""


def loud(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)


def environment() -> dict[str, str]:
    """The subprocesses' environment: the checkout on the path, one BLAS thread."""
    path = os.pathsep.join(p for p in (str(ROOT), *EXTRA_PATH, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def find_mnist(data_dir: str | None) -> Path | None:
    candidates = [Path(data_dir)] if data_dir else []
    candidates += [ROOT / "shared" / "data" / "mnist", ROOT.parent / "shared" / "data" / "mnist"]
    return next((c for c in candidates if c.is_dir() and any(c.glob("train-images*"))), None)


def plan(out: Path, mnist: Path | None, args: argparse.Namespace) -> list[Step]:
    py = sys.executable
    run = out / "mnist"
    td = [py, "-m", "tinydiff"]
    data = ["--data-dir", str(mnist)] if mnist else []
    classifier = ["--classifier", args.classifier] if args.classifier else []
    mpiexec = shutil.which("mpiexec")
    nccl = ([mpiexec, "-n", "1"] if mpiexec else []) + td + [
        "train", "toy2d", "--device", "cuda", "--distributed", "--steps", "50", "--batch-size", "256",
        "--out", str(out / "nccl"), "--no-progress", "--no-preview"]
    return [
        Step("cupy-tests", [py, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
                            "--junitxml", str(out / "cupy-tests.xml"), str(ROOT / "tests")], 120),
        Step("mnist-train", td + ["train", "mnist", "--device", "cuda", "--steps", str(args.mnist_steps),
                                  "--out", str(run), "--ckpt-every", str(args.mnist_steps),
                                  "--no-progress", "--no-preview", *data], 90),
        Step("mnist-sample", td + ["sample", str(run), "--device", "cuda", "--sampler", "ddim",
                                   "--steps", "50", "--n", "500", "--batch-size", "500",
                                   "--out", str(out / "mnist-samples.png"), "--no-progress"], 40,
             needs=("mnist-train",)),
        Step("nccl", nccl, 45),
        Step("bench", [py, str(ROOT / "benchmarks" / "run.py"), "--device", "cuda", "--steps", "5",
                       "--mlp-steps", "20", "--no-profile", "--markdown", "--torch-python", py], 150),
        # Last: without a cached classifier, eval first trains one (minutes, on the CPU).
        Step("mnist-eval", td + ["eval", str(run), "--device", "cuda", "--n", str(args.eval_n),
                                 "--bpd-n", "0", "--no-speed", "--no-progress",
                                 "--out", str(out / "mnist-metrics.json"), *data, *classifier], 120,
             needs=("mnist-train",)),
    ]


# --------------------------------------------------------------------------- checks

def preflight(out: Path, mnist: Path | None, dry_run: bool) -> dict[str, str]:
    """Facts about the machine; raises SystemExit(2) with a loud message on the first problem."""
    facts = {"python": platform.python_version(), "machine": platform.node()}

    def fail(what: str) -> None:
        loud(f"gpu_check: PREFLIGHT FAILED: {what}")
        raise SystemExit(2)

    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".writable").write_text("ok")
        (out / ".writable").unlink()
    except OSError as exc:
        fail(f"the output folder {out} is not writable: {exc}")
    import numpy
    facts["numpy"] = numpy.__version__
    missing = [f"{name} ({why})" for name, why in REQUIRED.items() if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"not importable here: {', '.join(missing)}. Nothing can be installed on the GPU "
             f"machine: carry them in a folder (e.g. pip install --target DIR --no-deps ... on a "
             f"machine with the same Python) and pass --deps DIR")
    if mnist is None:
        fail("no MNIST folder (give --data-dir; looked in ./shared/data/mnist and ../shared/data/mnist)")
    facts["mnist"] = str(mnist)
    if dry_run:
        facts["gpu"] = "not checked (dry run)"
        return facts
    try:
        import cupy
        facts["cupy"] = cupy.__version__
        facts["devices"] = str(cupy.cuda.runtime.getDeviceCount())
        props = cupy.cuda.runtime.getDeviceProperties(0)
        facts["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        if float(cupy.arange(10, dtype=cupy.float32).sum()) != 45.0:
            fail("a CuPy reduction on the device gave a wrong answer")
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 (any CuPy/driver problem ends the check here)
        fail(f"CuPy cannot use a GPU: {type(exc).__name__}: {exc}")
    sys.path.insert(0, str(ROOT))
    from autograd.backend import cuda_available, cuda_unavailable_reason
    if not cuda_available():
        fail(f"tinydiff's backend sees no GPU: {cuda_unavailable_reason()}")
    try:
        import torch
        facts["torch"] = torch.__version__
        if not torch.cuda.is_available():
            fail("torch.cuda.is_available() is False: the benchmark's torch side needs CUDA")
    except ImportError as exc:
        fail(f"PyTorch is not importable ({exc}): the benchmark needs it")
    try:
        import mpi4py
        facts["mpi4py"] = mpi4py.__version__
    except ImportError:
        facts["mpi4py"] = "missing (the nccl step will fail)"
    return facts


def dry_check(step: Step) -> str:
    """Check, without a GPU, that a step's command would start; returns a note, raises on error."""
    cmd = step.command
    if "tinydiff" in cmd and cmd[cmd.index("tinydiff") - 1] == "-m":
        argv = cmd[cmd.index("tinydiff") + 1:]
        sys.path.insert(0, str(ROOT))
        from tinydiff.cli import build_parser
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            raise RuntimeError(f"tinydiff's parser refuses: {' '.join(argv)}") from exc
        return "tinydiff accepts the arguments"
    if cmd[1:3] == ["-m", "pytest"]:
        proc = subprocess.run([*cmd[:3], "--collect-only", "-q", *cmd[3:]], capture_output=True, text=True,
                              env=environment(), cwd=ROOT, timeout=120)
        # `-q --collect-only` prints one "path: count" line per file
        count = sum(int(n) for n in re.findall(r"^\S+\.py: (\d+)$", proc.stdout, flags=re.M))
        if proc.returncode != 0 or count == 0:
            raise RuntimeError(f"pytest collects no CUDA tests:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return f"{count} CUDA tests collected"
    if cmd[1].endswith("run.py"):
        proc = subprocess.run([cmd[0], cmd[1], "--help"], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or "--device" not in proc.stdout:
            raise RuntimeError(f"benchmarks/run.py --help failed:\n{proc.stderr[-2000:]}")
        return "benchmarks/run.py starts"
    return "not checked"


# --------------------------------------------------------------------------- running

def run_step(step: Step, out: Path, deadline: float) -> None:
    """Run one step with its timeout (capped by the deadline); its output goes to out/<name>.log."""
    remaining = deadline - time.monotonic()
    limit = min(step.timeout, remaining)
    if remaining < 5:
        step.status, step.note = SKIPPED, "the overall budget ran out"
        return
    log = out / f"{step.name}.log"
    print(f"== {step.name} (at most {limit:.0f} s): {' '.join(step.command)}", flush=True)
    start = time.monotonic()
    with open(log, "w") as f:
        f.write("$ " + " ".join(step.command) + "\n")
        f.flush()
        try:
            proc = subprocess.run(step.command, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                  env=environment(), timeout=limit)
            step.status = PASSED if proc.returncode == 0 else FAILED
            step.note = "" if proc.returncode == 0 else f"exit status {proc.returncode}"
        except subprocess.TimeoutExpired:
            step.status, step.note = TIMEOUT, f"killed after {limit:.0f} s"
        except OSError as exc:
            step.status, step.note = FAILED, f"could not start: {exc}"
    step.seconds = round(time.monotonic() - start, 1)
    text = log.read_text(errors="replace")
    step.numbers = numbers(step.name, text, out)
    if step.status != PASSED:
        tail = "\n".join(text.splitlines()[-25:])
        loud(f"gpu_check: {step.name} {step.status} ({step.note}, {step.seconds} s); log {log}:\n{tail}")
    else:
        print(f"   {step.name}: passed in {step.seconds} s {step.numbers or ''}", flush=True)


def numbers(name: str, text: str, out: Path) -> dict:
    """The figures worth a line in the summary, read from a step's output."""
    found: dict = {}
    if name == "cupy-tests":
        for count, what in re.findall(r"(\d+) (passed|failed|skipped|errors?)", text):
            found[what] = int(count)
    elif name in ("mnist-train", "nccl"):
        m = re.search(r"Done: step (\d+), loss ([\d.]+).*?, ([\d.]+) (steps/s|s/step)", text)
        if m:
            rate = float(m.group(3))
            found.update(step=int(m.group(1)), loss=float(m.group(2)),
                         steps_per_s=round(rate if m.group(4) == "steps/s" else 1 / rate, 2))
    elif name == "mnist-sample":
        m = re.search(r"([\d.]+) images/s", text)
        if m:
            found["images_per_s"] = float(m.group(1))
    elif name == "mnist-eval" and (out / "mnist-metrics.json").exists():
        metrics = json.loads((out / "mnist-metrics.json").read_text())
        found = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    elif name == "bench":
        table = [line for line in text.splitlines() if line.startswith("|")]
        if table:
            (out / "bench.md").write_text("\n".join(table) + "\n")
            found["table"] = "bench.md"
    return found


def write_summary(out: Path, facts: dict, steps: list[Step], dry_run: bool) -> None:
    (out / "summary.json").write_text(json.dumps({"facts": facts, "dry_run": dry_run,
                                                  "steps": [asdict(s) for s in steps]}, indent=2) + "\n")
    lines = [f"# gpu_check {'(dry run) ' if dry_run else ''}{time.strftime('%Y-%m-%d %H:%M:%S')}", "",
             ", ".join(f"{k} {v}" for k, v in facts.items()), "",
             "| step | status | seconds | numbers / note |", "|---|---|---|---|"]
    for s in steps:
        detail = ", ".join(f"{k}={v}" for k, v in s.numbers.items()) or s.note
        lines.append(f"| {s.name} | {s.status} | {s.seconds} | {detail} |")
    if (out / "bench.md").exists():
        lines += ["", "## benchmarks/run.py --device cuda", "", (out / "bench.md").read_text()]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("out", metavar="OUT_DIR", help="folder for every log, the summary and the figures")
    ap.add_argument("--data-dir", help="MNIST IDX folder (default: ./shared/data/mnist, ../shared/data/mnist)")
    ap.add_argument("--classifier", help="the judging classifier's .npz for mnist-eval (default: the cache; "
                                         "trained there first if missing, which costs minutes)")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                    help=f"overall seconds for the steps (default {DEFAULT_BUDGET:g}: with start-up, "
                         f"under 8 minutes)")
    ap.add_argument("--mnist-steps", type=int, default=300, help="MNIST training steps (default 300)")
    ap.add_argument("--eval-n", type=int, default=1000, help="images for the FID (default 1000)")
    ap.add_argument("--only", default="", help="comma-separated steps to run (default: all)")
    ap.add_argument("--deps", action="append", default=[], metavar="DIR",
                    help="a folder of extra packages to put on the path (repeatable)")
    ap.add_argument("--dry-run", action="store_true", help="check the commands and data, run nothing on a GPU")
    args = ap.parse_args(argv)
    for folder in args.deps:
        EXTRA_PATH.append(str(Path(folder).resolve()))
        sys.path.insert(0, EXTRA_PATH[-1])

    out = Path(args.out).resolve()
    mnist = find_mnist(args.data_dir)
    facts = preflight(out, mnist, args.dry_run)
    print("gpu_check: " + ", ".join(f"{k} {v}" for k, v in facts.items()), flush=True)
    steps = plan(out, mnist, args)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in steps}
        if unknown:
            ap.error(f"--only: unknown steps {sorted(unknown)}; the steps are {[s.name for s in steps]}")
        steps = [s for s in steps if s.name in wanted]
    if sum(s.timeout for s in steps) > args.budget:
        print(f"gpu_check: the steps' timeouts add up to {sum(s.timeout for s in steps):.0f} s; the "
              f"budget of {args.budget:.0f} s caps the last ones", flush=True)
    deadline = time.monotonic() + args.budget
    status = {s.name: s for s in steps}
    for step in steps:
        missing = [n for n in step.needs if n in status and status[n].status != PASSED]
        if args.dry_run:
            try:
                step.note = dry_check(step)
            except Exception as exc:  # noqa: BLE001 (reported, then the exit status says so)
                step.status, step.note = FAILED, str(exc)
                loud(f"gpu_check: {step.name} would not start: {exc}")
            continue
        if missing:
            step.status, step.note = SKIPPED, f"needs {', '.join(missing)}"
            continue
        run_step(step, out, deadline)
        write_summary(out, facts, steps, args.dry_run)  # after every step: a cut-off run keeps its notes
    write_summary(out, facts, steps, args.dry_run)
    bad = [s.name for s in steps if s.status in (FAILED, TIMEOUT)]
    print(f"\ngpu_check: {'dry run: ' if args.dry_run else ''}"
          f"{'FAILED: ' + ', '.join(bad) if bad else 'all steps ' + ('check out' if args.dry_run else 'passed')}"
          f"; summary in {out / 'summary.md'}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
