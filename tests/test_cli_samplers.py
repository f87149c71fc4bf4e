"""The command line of the samplers: sample with ODE samplers, spacings and karras sigmas,
oracle, compare-samplers (tiny runs, in-process through tinydiff.cli.main)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tinydiff import cli

TINY = ["--steps", "30", "--batch-size", "64", "--hidden-dim", "32", "--num-layers", "2",
        "--timesteps", "50", "--warmup-steps", "5", "--no-progress", "--no-preview"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-samplers") / "run"
    assert cli.main(["train", "toy2d", "--dataset", "8gaussians", "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.parametrize("extra, calls", [(["--sampler", "heun", "--steps", "10", "--spacing", "trailing"], 19),
                                          (["--sampler", "dpmpp_2m", "--steps", "7", "--sigmas", "karras"], 7),
                                          (["--sampler", "euler", "--steps", "5"], 5)])
def test_sample_with_ode_samplers(run_dir, tmp_path, capsys, extra, calls):
    npy = tmp_path / "x.npy"
    assert cli.main(["sample", str(run_dir), *extra, "--n", "50", "--out", str(tmp_path / "x.png"),
                     "--save-npy", str(npy), "--no-progress"]) == 0
    assert f"{calls} model calls" in capsys.readouterr().out
    x = np.load(npy)
    assert x.shape == (50, 2) and np.isfinite(x).all()


def test_sample_option_errors(run_dir, tmp_path, capsys):
    png = str(tmp_path / "x.png")
    assert cli.main(["sample", str(run_dir), "--sampler", "ddim", "--sigmas", "karras", "--out", png]) == 1
    assert "needs an ODE sampler" in capsys.readouterr().err
    assert cli.main(["sample", str(run_dir), "--sampler", "heun", "--sigmas", "karras",
                     "--spacing", "leading", "--out", png]) == 1
    assert "no spacing" in capsys.readouterr().err
    assert cli.main(["sample", str(run_dir), "--spacing", "middle", "--out", png]) == 2


@pytest.mark.parametrize("command", [["sample", "x"], ["eval", "x"], ["oracle"], ["compare-samplers", "x"]])
def test_help_names_the_options(command, capsys):
    assert cli.main([*command[:1], "--help"]) == 0
    text = capsys.readouterr().out
    compare = ("--evals", "--no-karras", "--no-exponential", "--repeats")
    for option in ("--spacing", "--sigmas") if command[0] != "compare-samplers" else compare:
        assert option in text


def test_oracle_command(run_dir, tmp_path, capsys):
    out = tmp_path / "oracle"
    assert cli.main(["oracle", "--dataset", "8gaussians", "--run", str(run_dir), "--sampler", "heun",
                     "--steps", "5", "--n", "300", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "exact denoiser" in printed and "trained network" in printed
    result = json.loads((out / "oracle_8gaussians.json").read_text())
    assert result["exact"]["sw_ratio"] < result["learned"]["sw_ratio"]  # a 30-step network is poor
    for png in result["figures"]:
        assert (tmp_path / "oracle" / png.split("/")[-1]).stat().st_size > 10_000
    assert cli.main(["oracle", "--dataset", "moons", "--run", str(tmp_path / "none")]) == 1
    assert "tinydiff train toy2d --dataset moons" in capsys.readouterr().err
    assert cli.main(["oracle", "--dataset", "moons", "--run", str(run_dir)]) == 1
    assert "8gaussians, not moons" in capsys.readouterr().err


def test_compare_samplers_command(run_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare-samplers", str(run_dir), "--samplers", "ddim", "heun", "--evals", "3", "6",
                     "--n", "200", "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "compare_samplers_8gaussians.json").read_text())
    got = {(r["sampler"], r["sigmas"], r["evaluations"]) for r in result["rows"]}
    assert got == {("ddim", "linspace", 3), ("ddim", "linspace", 6), ("heun", "trailing", 3),
                   ("heun", "trailing", 5), ("heun", "karras", 3), ("heun", "karras", 5),
                   ("heun", "exponential", 3), ("heun", "exponential", 5), ("ddpm", "linspace", 50)}
    table = (out / "compare_samplers_8gaussians.md").read_text()
    assert "| heun (karras) |" in table and "ddpm, all 50 steps" in table and "(5)" in table
    assert "| heun (exponential) |" in table and "mean of seeds 0..4" in table  # toy default: 5 seeds
    assert all(len(r["ratios"]) == 5 for r in result["rows"])
    assert (out / "compare_samplers_8gaussians.png").stat().st_size > 10_000
    # repeat r is the run with seed + r on its own: the same cell as --seed 2 --repeats 1
    one = tmp_path / "one"
    assert cli.main(["compare-samplers", str(run_dir), "--samplers", "ddim", "--evals", "3", "--n", "200",
                     "--seed", "2", "--repeats", "1", "--no-ddpm", "--out", str(one), "--no-progress"]) == 0
    single = json.loads((one / "compare_samplers_8gaussians.json").read_text())["rows"][0]
    assert single["ratio"] == pytest.approx(result["rows"][0]["ratios"][2], rel=1e-12)
    assert "seed 2;" in (one / "compare_samplers_8gaussians.md").read_text()
    # Bad budgets are usage errors (exit 2), checked by the parser like every other count.
    assert cli.main(["compare-samplers", str(run_dir), "--evals", "0"]) == 2
    assert cli.main(["compare-samplers", str(run_dir), "--repeats", "0"]) == 2
    assert "--repeats: expected a positive integer" in capsys.readouterr().err


def test_eval_nll_ode_and_an_ode_sampler(run_dir, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert cli.main(["eval", str(run_dir), "--sampler", "heun", "--steps", "4", "--spacing", "trailing",
                     "--n", "200", "--nll", "ode", "--nll-n", "20", "--nll-steps", "10",
                     "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "heun (4 steps, trailing spacing, 7 model calls)" in printed and "ODE NLL" in printed
    result = json.loads(out.read_text())
    nll = result["nll_ode"]
    assert nll["n"] == 20 and nll["evaluations"] == 20 and np.isfinite(nll["nll_nats"])
    assert nll["nll_nats"] > nll["true_nll_nats"] - 0.5  # a 30-step model is no better than the truth
