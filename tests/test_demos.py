"""The demos: --help works from a fresh interpreter, and demos/toy2d.py runs end to end on tiny
settings, writing every figure it announces."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

DEMOS = Path(__file__).resolve().parent.parent / "demos"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"demo_{name}", DEMOS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["toy2d", "mnist"])
def test_demo_help(name):
    done = subprocess.run([sys.executable, str(DEMOS / f"{name}.py"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for option in ("--steps", "--out", "--seed"):
        assert option in done.stdout
    assert "default" in done.stdout


def test_toy2d_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    demo = _load("toy2d")
    assert demo.main(["--steps", "5", "--n", "120", "--sample-steps", "4", "--out", str(out),
                      "--dataset", "8gaussians", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    figures = ["1_forward.png", "2_loss.png", "3_score_field.png", "4_trajectories.png",
               "5_reverse.gif", "6_samples.png"]
    for name in figures:
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000, name
        assert str(path) in printed, f"the demo does not say where {name} went"
    assert (out / "checkpoint.npz").is_file()
    assert "data-vs-data floor" in printed and "x the floor" in printed
