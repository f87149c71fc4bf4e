"""The `tinydiff` command line, run in-process through `tinydiff.cli.main` on tiny settings."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinydiff import cli
from tinydiff.checkpoint import load_checkpoint

TINY = ["--steps", "30", "--batch-size", "64", "--hidden-dim", "32", "--num-layers", "2",
        "--timesteps", "50", "--warmup-steps", "5", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 30-step toy run trained through the CLI (shared by the sampling tests)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main(["train", "toy2d", "--dataset", "8gaussians", "--out", str(out), *TINY]) == 0
    return out


def test_train_toy2d_writes_its_outputs_and_says_where(run_dir, capsys, tmp_path):
    for name in ("checkpoint.npz", "loss.csv", "config.json", "samples.png"):
        assert (run_dir / name).is_file(), name
    state = load_checkpoint(run_dir / "checkpoint.npz")
    assert state["step"] == 30
    assert state["config"]["dataset"] == "8gaussians" and state["config"]["timesteps"] == 50
    assert state["config"]["model"]["hidden_dim"] == 32
    out = tmp_path / "again"
    assert cli.main(["train", "toy2d", "--out", str(out), *TINY, "--no-preview"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "checkpoint.npz") in printed and str(out / "loss.csv") in printed


def test_train_refuses_to_overwrite_then_resumes(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "toy2d", "--out", out, *TINY, "--steps", "10", "--no-preview"]
    assert cli.main(args) == 0
    assert cli.main(args) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert cli.main(["train", "toy2d", "--out", out, "--steps", "15", "--resume", "--no-progress",
                     "--no-preview"]) == 0
    assert load_checkpoint(Path(out) / "checkpoint.npz")["step"] == 15
    assert cli.main(["train", "toy2d", "--out", out, "--lr", "0.5", "--resume", "--no-preview"]) == 1
    assert "cannot resume" in capsys.readouterr().err


def test_train_reports_divergence_clearly(tmp_path, capsys):
    code = cli.main(["train", "toy2d", "--out", str(tmp_path / "nan"), *TINY, "--lr", "1e30",
                     "--warmup-steps", "0", "--grad-clip", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "diverged at step 2" in err and "is inf" in err or "is nan" in err


@pytest.mark.parametrize("sampler, extra", [("ddim", ["--steps", "5"]), ("ddpm", [])])
def test_sample_writes_a_scatter_plot_and_reports_speed(run_dir, tmp_path, capsys, sampler, extra):
    png, npy = tmp_path / "s.png", tmp_path / "s.npy"
    code = cli.main(["sample", str(run_dir / "checkpoint.npz"), "--sampler", sampler, *extra,
                     "--n", "16", "--out", str(png), "--save-npy", str(npy), "--no-progress"])
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = np.load(npy)
    assert samples.shape == (16, 2) and samples.dtype == np.float32 and np.isfinite(samples).all()
    assert "points/s" in capsys.readouterr().out


def test_sample_is_reproducible_and_accepts_a_run_folder(run_dir, tmp_path):
    paths = [tmp_path / "a.npy", tmp_path / "b.npy"]
    for path, target in zip(paths, [run_dir / "checkpoint.npz", run_dir]):
        assert cli.main(["sample", str(target), "--sampler", "ddim", "--steps", "4", "--eta", "1",
                         "--n", "8", "--out", str(tmp_path / "x.png"), "--save-npy", str(path),
                         "--no-progress"]) == 0
    np.testing.assert_array_equal(np.load(paths[0]), np.load(paths[1]))


def test_sample_errors_are_clear(run_dir, tmp_path, capsys):
    ckpt = str(run_dir / "checkpoint.npz")
    png = str(tmp_path / "x.png")
    assert cli.main(["sample", ckpt, "--guidance", "3", "--n", "4", "--out", png]) == 1
    assert "class-conditional" in capsys.readouterr().err
    assert cli.main(["sample", ckpt, "--sampler", "ddpm", "--steps", "10", "--out", png]) == 1
    assert "--sampler ddim" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    assert cli.main(["sample", str(bad), "--out", png]) == 1
    assert str(bad) in capsys.readouterr().err
    assert cli.main(["sample", str(tmp_path / "nothing.npz"), "--out", png]) == 1
    assert "no checkpoint at" in capsys.readouterr().err
    assert cli.main(["sample", ckpt, "--sampler", "rk4"]) == 2         # argparse usage error


def test_eval_and_show_forward_call_their_modules(monkeypatch, tmp_path, capsys):
    calls = {}
    from tinydiff import evaluate
    monkeypatch.setattr(evaluate, "evaluate_checkpoint",
                        lambda path, **kw: calls.setdefault("eval", (path, kw["n"])) and {})
    assert cli.main(["eval", "some.npz", "--n", "100"]) == 0
    assert calls["eval"] == ("some.npz", 100)

    from tinydiff import plots
    monkeypatch.setattr(plots, "show_forward", lambda dataset, out, **kw: calls.setdefault(
        "forward", (dataset, out, kw["schedule"])) and out)
    assert cli.main(["show-forward", "--dataset", "moons", "--schedule", "cosine",
                     "--out", str(tmp_path / "f.png")]) == 0
    assert calls["forward"] == ("moons", str(tmp_path / "f.png"), "cosine")


# --------------------------------------------------------------------------- help

def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    """(command words, parser) for every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _subparsers(sub, prefix + (name,))


COMMANDS = [words for words, _ in _subparsers(cli.build_parser())]


def test_every_command_is_covered():
    assert set(COMMANDS) >= {("train",), ("train", "toy2d"), ("train", "mnist"), ("sample",),
                             ("eval",), ("show-forward",)}


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_help_explains_every_option_with_its_default(words, capsys):
    assert cli.main([*words, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())          # undo argparse's line wrapping
    parser = dict(_subparsers(cli.build_parser()))[words]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = action.option_strings[0] if action.option_strings else action.metavar or action.dest
        assert name in text, f"{name} missing from 'tinydiff {' '.join(words)} --help'"
        assert action.help and len(action.help) > 10, f"{name} has no real help text"
        takes_value = action.option_strings and action.nargs != 0
        if takes_value and "--save-npy" not in action.option_strings and \
                "--data-dir" not in action.option_strings:
            assert "default" in action.help, f"{name}'s help does not state its default"


def test_top_level_help_and_python_dash_m():
    assert cli.main(["--help"]) == 0
    assert cli.main([]) == 2                                 # a command is required
    done = subprocess.run([sys.executable, "-m", "tinydiff", "train", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "toy2d" in done.stdout


# --------------------------------------------------------------------------- eval, show-forward for real

def test_show_forward_writes_a_figure(tmp_path, capsys):
    out = tmp_path / "forward.png"
    assert cli.main(["show-forward", "--dataset", "8gaussians", "--timesteps", "100", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert str(out) in capsys.readouterr().out


def test_eval_a_toy_checkpoint(run_dir, tmp_path, capsys):
    import json
    out = tmp_path / "metrics.json"
    assert cli.main(["eval", str(run_dir), "--n", "300", "--steps", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sliced W2" in printed and "data-vs-data floor" in printed
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 300 and metrics["step"] == 30 and metrics["sampler"].startswith("DDIM (5 steps")
    assert metrics["sw_ratio"] == pytest.approx(metrics["sw"] / metrics["sw_floor"])
    assert cli.main(["eval", str(tmp_path / "missing.npz")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_mnist_defaults_to_class_conditional_and_can_opt_out(tmp_path, mnist_dir):
    from tinydiff.run import TrainConfig
    assert TrainConfig.mnist().class_cond
    out = tmp_path / "u"
    assert cli.main(["train", "mnist", "--no-class-cond", "--steps", "1", "--batch-size", "2",
                     "--model-channels", "8", "--timesteps", "10", "--data-dir", str(mnist_dir),
                     "--out", str(out), "--no-progress", "--no-preview"]) == 0
    config = load_checkpoint(out / "checkpoint.npz")["config"]
    assert config["class_cond"] is False and config["model"]["model_channels"] == 8

    # Image samples clip x_0_hat to [-1, 1] by default: a barely trained model predicts eps ~ 0,
    # so unclipped DDIM returns x_T / sqrt(alpha_bar_T), far outside the pixel range.
    def sample(*extra):
        npy = tmp_path / "s.npy"
        assert cli.main(["sample", str(out), "--sampler", "ddim", "--steps", "3", "--n", "2",
                         "--out", str(tmp_path / "s.png"), "--save-npy", str(npy), "--no-progress",
                         *extra]) == 0
        return np.load(npy)
    assert np.abs(sample()).max() <= 1.0
    assert np.abs(sample("--no-clip-x0")).max() > 2.0
