"""benchmarks/gpu_check.py without a GPU: its dry run checks every command and writes the plan,
and its runner reports a failing or hanging step loudly, skips what depends on it, and exits 1."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = _load()


def test_the_dry_run_checks_every_step_and_writes_the_plan(tmp_path, mnist_dir):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "out"), "--dry-run",
                           "--data-dir", str(mnist_dir)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dry_run"] is True
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["cupy-tests", "mnist-train", "mnist-sample", "nccl", "bench", "mnist-eval"]
    assert all(s["status"] == "planned" for s in steps.values())
    assert int(steps["cupy-tests"]["note"].split()[0]) > 100  # the CUDA tests were collected
    assert steps["mnist-train"]["note"] == "tinydiff accepts the arguments"
    assert "--device" in steps["bench"]["command"] and "cuda" in steps["bench"]["command"]
    # the budget, plus ~40 s of preflight and start-up, stays under the 8 minutes asked for
    assert gpu_check.DEFAULT_BUDGET + 40 <= 8 * 60
    assert "| cupy-tests | planned |" in (tmp_path / "out" / "summary.md").read_text()


def test_a_command_the_cli_would_refuse_fails_the_dry_run():
    step = gpu_check.Step("bad", [sys.executable, "-m", "tinydiff", "train", "mnist", "--no-such-flag"], 10)
    with pytest.raises(RuntimeError, match="tinydiff's parser refuses"):
        gpu_check.dry_check(step)


def test_a_failed_or_hung_step_is_loud_and_its_dependents_are_skipped(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    steps = [gpu_check.Step("fails", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], 30),
             gpu_check.Step("hangs", [sys.executable, "-c", "import time; time.sleep(60)"], 2),
             gpu_check.Step("after", [sys.executable, "-c", "pass"], 30, needs=("fails",))]
    monkeypatch.setattr(gpu_check, "plan", lambda out, mnist, args: steps)
    monkeypatch.setattr(gpu_check, "preflight", lambda out, mnist, dry: {"python": "x"})
    assert gpu_check.main([str(out)]) == 1
    err = capsys.readouterr().err
    assert "fails FAILED (exit status 3" in err and "boom" in err
    assert "hangs TIMEOUT (killed after 2 s" in err
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["steps"]] == ["FAILED", "TIMEOUT", "skipped"]
    assert summary["steps"][2]["note"] == "needs fails"
    assert (out / "fails.log").read_text().splitlines()[-1] == "boom"


def test_preflight_stops_at_once_without_data(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.preflight(tmp_path, None, dry_run=True)
    assert exc.value.code == 2
    assert "PREFLIGHT FAILED: no MNIST folder" in capsys.readouterr().err


def test_preflight_names_every_missing_import(tmp_path, capsys, monkeypatch, mnist_dir):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("scipy", "hypothesis") else real(name, *a))
    with pytest.raises(SystemExit) as exc:
        gpu_check.preflight(tmp_path, mnist_dir, dry_run=True)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "not importable here: scipy (tinydiff itself (the CLI, FID)), hypothesis (the CuPy" in err
    assert "--deps DIR" in err


def test_the_numbers_are_read_from_the_outputs(tmp_path):
    train = "Done: step 300, loss 0.0712 (mean of the last 100 steps), 9.1 s of training, 33 steps/s"
    assert gpu_check.numbers("mnist-train", train, tmp_path) == {"step": 300, "loss": 0.0712, "steps_per_s": 33.0}
    slow = "Done: step 3, loss 0.5 (mean of the last 3 steps), 3.0 s of training, 0.50 s/step"
    assert gpu_check.numbers("nccl", slow, tmp_path)["steps_per_s"] == 2.0
    assert gpu_check.numbers("mnist-sample", "500 images in 2.00 s: 250.0 images/s", tmp_path) == \
        {"images_per_s": 250.0}
    assert gpu_check.numbers("cupy-tests", "150 passed, 2 failed, 7 skipped in 60s", tmp_path) == \
        {"passed": 150, "failed": 2, "skipped": 7}
