"""Defects 5, 6 and 9 of issue 11 through the command line, in-process: non-finite options and
outputs, options that were silently ignored, and tracebacks instead of one or two lines."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from tinydiff import cli
from tinydiff.checkpoint import load_checkpoint, save_checkpoint

TINY = ["--batch-size", "32", "--hidden-dim", "16", "--num-layers", "1", "--timesteps", "30",
        "--warmup-steps", "2", "--no-progress", "--no-preview"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "run"
    assert cli.main(["train", "toy2d", "--steps", "20", "--out", str(out), *TINY]) == 0
    return out


def run(argv, capsys):
    """(exit code, stderr) of one in-process command."""
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_short_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("tinydiff")]
    assert len(lines) == 1 and len(err.strip().splitlines()) <= 2 or "usage:" in err, err
    for needle in needles:
        assert needle in err, (needle, err)


# --------------------------------------------------------------------------- defect 5

@pytest.mark.parametrize("option, value", [("--lr", "inf"), ("--weight-decay", "inf"),
                                           ("--lr", "nan"), ("--grad-clip", "inf")])
def test_train_refuses_non_finite_options(tmp_path, capsys, option, value):
    code, err = run(["train", "toy2d", "--steps", "3", "--out", tmp_path / "r", *TINY, option, value],
                    capsys)
    assert code == 2 and f"argument {option}: expected a finite number" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_guidance_nan_is_refused(toy_run, tmp_path, capsys, command):
    code, err = run([command, toy_run, "--guidance", "nan", "--out", tmp_path / "x", "--no-progress"],
                    capsys)
    assert code == 2 and "argument --guidance: expected a finite number, got 'nan'" in err


def test_a_checkpoint_with_nan_weights_does_not_sample(toy_run, tmp_path, capsys):
    state = load_checkpoint(toy_run / "checkpoint.npz")
    name = next(iter(state["ema"]["shadow"]))
    state["ema"]["shadow"][name] = np.full_like(state["ema"]["shadow"][name], np.nan)
    bad = tmp_path / "nan.npz"
    save_checkpoint({k: v for k, v in state.items() if k not in ("kind", "version")}, bad)
    png, npy = tmp_path / "s.png", tmp_path / "s.npy"
    code, err = run(["sample", bad, "--n", "4", "--out", png, "--save-npy", npy, "--no-progress"], capsys)
    assert code == 1 and not png.exists() and not npy.exists()
    assert_short_error(err, str(bad), "NaN or inf")


def test_generate_refuses_to_return_non_finite_samples():
    from tinydiff.diffusion import GaussianDiffusion
    from tinydiff.sampling import NonFiniteSamples, generate
    from tinydiff.schedules import make_beta_schedule

    class Exploding:
        def eval(self):
            return self

        def __call__(self, x, t, y=None):
            from autograd.tensor import Tensor
            return Tensor(x.data * np.float32(np.inf))
    diffusion = GaussianDiffusion(make_beta_schedule("cosine", 10))
    with pytest.raises(NonFiniteSamples, match="3 of 3 samples hold NaN or inf"), np.errstate(all="ignore"):
        generate(Exploding(), diffusion, 3, (2,), sampler="ddim", steps=3)
    with pytest.raises(ValueError, match="guidance must be a finite"):
        generate(Exploding(), diffusion, 3, (2,), guidance=float("nan"))


# --------------------------------------------------------------------------- defect 6

@pytest.mark.parametrize("n, code", [("0", 2), ("1", 1)])
def test_eval_n_below_two_is_refused(toy_run, capsys, n, code):
    got, err = run(["eval", toy_run, "--n", n, "--no-progress"], capsys)
    assert got == code and "--n" in err and "Traceback" not in err


def test_sample_out_folder_is_refused(toy_run, tmp_path, capsys):
    code, err = run(["sample", toy_run, "--out", tmp_path, "--n", "4", "--no-progress"], capsys)
    assert code == 1
    assert_short_error(err, "--out", "is a folder")


def test_resume_with_fewer_steps_than_done_is_refused(toy_run, capsys):
    code, err = run(["train", "toy2d", "--resume", "--steps", "10", "--out", toy_run,
                     "--no-progress", "--no-preview"], capsys)
    assert code == 1
    assert_short_error(err, "--steps 10", "already done 20 steps")
    assert load_checkpoint(toy_run / "checkpoint.npz")["step"] == 20


def test_resume_of_another_task_is_refused(toy_run, capsys):
    code, err = run(["train", "mnist", "--resume", "--out", toy_run, "--no-progress",
                     "--no-preview"], capsys)
    assert code == 1
    assert_short_error(err, "is a toy2d run, not mnist")


# --------------------------------------------------------------------------- defect 9

@pytest.mark.parametrize("argv, needles, code", [
    (["train", "toy2d", "--timesteps", "5", "--steps", "5"], ["--timesteps 5", "T >= 21"], 1),
    (["train", "toy2d", "--hidden-dim", "0"], ["argument --hidden-dim", "positive integer"], 2),
    (["train", "toy2d", "--seed", "-1"], ["argument --seed", "integer >= 0"], 2),
    (["show-forward", "--timesteps", "0"], ["argument --timesteps"], 2),
    (["show-forward", "--timesteps", "5"], ["T >= 21"], 1),
])
def test_bad_values_name_the_option(tmp_path, capsys, argv, needles, code):
    argv = argv + (["--out", tmp_path / "o", "--no-progress", "--no-preview"] if argv[0] == "train"
                   else ["--out", tmp_path / "f.png"])
    got, err = run(argv, capsys)
    assert got == code
    assert_short_error(err, *needles)


def test_train_out_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    code, err = run(["train", "toy2d", "--out", path, *TINY], capsys)
    assert code == 1
    assert_short_error(err, "--out", "is a file")


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_old_one(toy_run, tmp_path,
                                                                          capsys, monkeypatch):
    import shutil
    run_dir = tmp_path / "copy"
    shutil.copytree(toy_run, run_dir)
    before = (run_dir / "checkpoint.npz").read_bytes()
    import autograd.serialization as ser

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run_dir / ".checkpoint.npz.x.tmp"))
    monkeypatch.setattr(ser, "_write_npz", full)
    code, err = run(["train", "toy2d", "--resume", "--steps", "25", "--out", run_dir,
                     "--no-progress", "--no-preview"], capsys)
    assert code == 1
    assert_short_error(err, "No space left on device", "intact")
    assert (run_dir / "checkpoint.npz").read_bytes() == before
    assert not list(run_dir.glob(".*.tmp"))


def test_a_checkpoint_with_a_missing_weight(toy_run, tmp_path, capsys):
    state = load_checkpoint(toy_run / "checkpoint.npz")
    state["model"].pop(next(iter(state["model"])))
    state["ema"]["shadow"].pop(next(iter(state["ema"]["shadow"])))
    bad = tmp_path / "missing.npz"
    save_checkpoint({k: v for k, v in state.items() if k not in ("kind", "version")}, bad)
    code, err = run(["sample", bad, "--n", "4", "--out", tmp_path / "s.png", "--no-progress"], capsys)
    assert code == 1
    assert_short_error(err, str(bad), "layers.0.weight", "missing")


@pytest.mark.parametrize("exc", [RuntimeError("boom inside"), MemoryError("Unable to allocate 7 TiB"),
                                 OSError(errno.EACCES, "Permission denied", "/x/y"),
                                 KeyError("weird"), ZeroDivisionError("division by zero")])
def test_any_exception_is_one_or_two_lines_and_debug_shows_the_traceback(monkeypatch, capsys, exc):
    def handler(args):
        raise exc
    monkeypatch.setattr(cli, "cmd_show_forward", handler)
    code, err = run(["show-forward"], capsys)
    assert code == 1
    assert_short_error(err)
    code, err = run(["show-forward", "--debug"], capsys)
    assert code == 1 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("tinydiff: error:")
    monkeypatch.setenv("TINYDIFF_DEBUG", "1")
    code, err = run(["show-forward"], capsys)
    assert code == 1 and "Traceback" in err


def test_eval_with_a_non_finite_metric_fails(toy_run, monkeypatch, capsys):
    # e.g. an FID whose covariance square root fails on degenerate features: never exit 0 with it.
    import tinydiff.evaluate as evaluate
    monkeypatch.setattr(evaluate, "evaluate_checkpoint",
                        lambda path, **options: {"fid": 3.0, "bpd": {"n": 4, "bpd": float("nan")}})
    code, err = run(["eval", toy_run, "--no-progress"], capsys)
    assert code == 1
    assert_short_error(err, "the metric bpd.bpd is not finite")


def test_resume_accepts_the_same_command_line_again(tmp_path, capsys):
    # Found while writing the crash tests: re-running the very command with --resume was refused
    # because it repeats --hidden-dim; only a *different* model is.
    argv = ["train", "toy2d", "--steps", "6", "--out", tmp_path / "r", *TINY]
    assert run(argv, capsys)[0] == 0
    assert run(argv + ["--steps", "8", "--resume"], capsys)[0] == 0
    assert load_checkpoint(tmp_path / "r" / "checkpoint.npz")["step"] == 8
    code, err = run(argv + ["--steps", "9", "--resume", "--hidden-dim", "17"], capsys)
    assert code == 1
    assert_short_error(err, "drop --hidden-dim")


def test_sample_prints_the_paths_it_really_writes(toy_run, tmp_path, capsys):
    # Found beside defect 6: `--out fig --save-npy arr` printed 'fig' and 'arr' while matplotlib
    # and numpy.save wrote fig.png and arr.npy.
    code = cli.main(["sample", str(toy_run), "--n", "3", "--out", str(tmp_path / "fig"),
                     "--save-npy", str(tmp_path / "arr"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"Figure: {tmp_path / 'fig.png'}" in out and f"Samples: {tmp_path / 'arr.npy'}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arr.npy", "fig.png"]


def test_sample_steps_above_T_names_the_option(toy_run, tmp_path, capsys):
    code, err = run(["sample", toy_run, "--sampler", "ddim", "--steps", "1000", "--out",
                     tmp_path / "s.png", "--no-progress"], capsys)
    assert code == 1
    assert_short_error(err, "--steps 1000", "T=30")


@pytest.mark.parametrize("argv, option", [
    (["eval", "{run}", "--nll", "ode", "--nll-steps", "0"], "--nll-steps"),  # was: 0 meant 100
    (["eval", "{run}", "--nll", "ode", "--nll-n", "0"], "--nll-n"),
    (["oracle", "--dataset", "moons", "--run", "{run}", "--steps", "0"], "--steps"),
    (["oracle", "--dataset", "moons", "--run", "{run}", "--seed", "-1"], "--seed"),
    (["compare-samplers", "{run}", "--guidance", "nan"], "--guidance"),  # was: accepted, exit 0
    (["compare-samplers", "{run}", "--repeats", "0"], "--repeats"),
    (["compare-samplers", "{run}", "--evals", "5", "0"], "--evals"),
])
def test_the_sampler_lab_options_are_checked_like_the_others(toy_run, capsys, argv, option):
    code, err = run([str(toy_run) if a == "{run}" else a for a in argv], capsys)
    assert code == 2
    assert_short_error(err, option)
