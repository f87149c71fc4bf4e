"""Crash tests (issue 11's fuzz suite): SIGKILL a training process at random moments, many times,
right after it starts or resumes and while it writes checkpoints (every 5 steps here). After
every kill the checkpoint loads and loss.csv holds every row up to the checkpoint's step; the run
finished by resuming reproduces the uninterrupted one bit for bit; no temporaries are left.
SIGTERM instead stops after the current step with exit 143 and a checkpoint of that step.
Each process costs ~1 s of start-up, so a dozen of them take ~15 s on the shared machine."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinydiff.checkpoint import load_checkpoint

STEPS = 300
MODEL = ["--hidden-dim", "16", "--num-layers", "1"]   # --resume keeps the saved model
ARGS = ["--batch-size", "32", "--timesteps", "30", "--log-every", "1", "--ckpt-every", "5",
        "--steps", str(STEPS), "--seed", "1", "--no-progress", "--no-preview"]
KILLS = 8


def start(out: Path, resume: bool) -> subprocess.Popen:
    argv = [sys.executable, "-m", "tinydiff", "train", "toy2d", "--out", str(out), *ARGS]
    return subprocess.Popen(argv + (["--resume"] if resume else MODEL), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})


def log_rows(path: Path) -> list[tuple[int, str]]:
    """(step, loss) of loss.csv's whole rows; a row torn by the kill (no line end) is not one."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines(keepends=True)[1:]:
        fields = line.rstrip("\r\n").split(",")
        if line.endswith("\n") and len(fields) == 5:
            rows.append((int(fields[0]), fields[1]))
    return rows


def assert_consistent(out: Path) -> int:
    """The checkpoint (if any) loads, and loss.csv holds each step up to it exactly once."""
    ckpt = out / "checkpoint.npz"
    if not ckpt.exists():
        return 0
    step = int(load_checkpoint(ckpt)["step"])
    steps = [s for s, _ in log_rows(out / "loss.csv") if s <= step]
    assert steps == list(range(1, step + 1)), f"loss.csv rows up to step {step}: {steps[-5:]}"
    return step


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _strip(state):
    """The state without wall-clock time and its folder, as nested plain values."""
    if isinstance(state, dict):
        return {k: _strip(v) for k, v in state.items() if k not in ("elapsed", "out_dir")}
    if isinstance(state, (list, tuple)):
        return [_strip(v) for v in state]
    if isinstance(state, np.ndarray):
        return (state.dtype.str, state.shape, state.tobytes())
    return state


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = start(out, resume=False)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    return out


def test_sigkill_at_random_moments_loses_nothing_and_resumes_bit_for_bit(reference, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(2026)
    kills = 0
    for attempt in range(KILLS):
        before = _stat(out / "loss.csv")
        proc = start(out, resume=(out / "checkpoint.npz").exists())
        first = proc.stdout.readline()          # "Training ..." or "Resuming ...": started
        assert first.startswith(("Training", "Resuming")), first + proc.stderr.read()
        # Kill at once; or the moment loss.csv first changes on disk after the (re)start (the
        # first checkpoint's rows, or, before issue 11's fix, the reopening that emptied it);
        # or anywhere in the next ~0.5 s of training and checkpoint writes.
        if attempt % 3 == 1:
            deadline = time.monotonic() + 0.5
            while _stat(out / "loss.csv") == before and time.monotonic() < deadline:
                time.sleep(0.0005)
        elif attempt % 3 == 2:
            time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        kills += code == -signal.SIGKILL
        assert_consistent(out)
    assert kills >= KILLS // 2, "most kills should land before the run finished"
    proc = start(out, resume=(out / "checkpoint.npz").exists())
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert assert_consistent(out) == STEPS
    assert _strip(load_checkpoint(out / "checkpoint.npz")) == _strip(load_checkpoint(reference / "checkpoint.npz"))
    assert log_rows(out / "loss.csv") == log_rows(reference / "loss.csv")   # every loss, bit for bit
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".*tmp*"))


def test_sigterm_saves_the_current_step_and_exits_143(tmp_path):
    out = tmp_path / "run"
    proc = start(out, resume=False)
    assert proc.stdout.readline().startswith("Training")
    deadline = time.monotonic() + 30
    while len(log_rows(out / "loss.csv")) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "SIGTERM: stopping after this step" in stdout and "Traceback" not in stderr
    step = assert_consistent(out)
    assert step >= 12 and step == log_rows(out / "loss.csv")[-1][0]   # nothing after it was lost
