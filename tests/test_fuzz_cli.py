"""Hypothesis-driven fuzzing of the command line, in-process (issue 11's fuzz suite).

Random option values (negative, zero, huge, NaN, inf, wrong types, paths that are files, folders
or missing) for `train`, `sample`, `eval` and `show-forward`, on tiny runs. The property: exit 0
with finite outputs and every file the command says it wrote, or exit 1/2 with a short message
on stderr and never a traceback. Values that would only make a run *long* (a huge --steps or
--n) are left out: they are not errors, and the suite must take seconds.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinydiff import cli
from tinydiff.checkpoint import load_checkpoint
from tinydiff.run import read_loss_log

# Per command: ~0.1-0.5 s each on the shared 2-core machine. TINYDIFF_FUZZ_EXAMPLES=500 (and
# TINYDIFF_FUZZ_RANDOM=1 for fresh draws instead of the fixed ones) for a longer hunt.
EXAMPLES = int(os.environ.get("TINYDIFF_FUZZ_EXAMPLES", "12"))
NUMBERS = ["-1", "0", "1", "2", "2.5", "nan", "inf", "-inf", "1e308", "1e-300", "x", "", "0x10",
           "99999999999999999999999999999999999999999999"]
SEEDS = ["-1", "0", "7", str(2**64), "x", "1.5"]


def _paths(root: Path) -> dict[str, str]:
    """Named awkward places, made once per module under ``root``."""
    (root / "a_folder").mkdir(exist_ok=True)
    (root / "a_file").write_text("not a checkpoint\n")
    return {"folder": str(root / "a_folder"), "file": str(root / "a_file"),
            "under_file": str(root / "a_file" / "x.png"), "missing": str(root / "no" / "such"),
            "empty": ""}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    run = root / "run"
    code = cli.main(["train", "toy2d", "--steps", "4", "--batch-size", "16", "--hidden-dim", "8",
                     "--num-layers", "1", "--timesteps", "30", "--out", str(run), "--no-progress",
                     "--no-preview"])
    assert code == 0
    return root, run, _paths(root)


def invoke(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def check_outcome(argv: list[str], code: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    if code == 0:
        for label, path in re.findall(r"^(Figure|Checkpoint|Loss log|Samples|Metrics|Config):\s+(\S+)$",
                                      out, flags=re.M):
            assert Path(path).is_file(), (argv, label, path)
            if path.endswith(".npy"):
                assert np.isfinite(np.load(path)).all(), argv
            if path.endswith(".npz"):
                load_checkpoint(path)
            if label == "Loss log":
                log = read_loss_log(path)
                assert np.isfinite(log["loss"]).all(), argv
            if label == "Metrics":
                assert "NaN" not in Path(path).read_text() and "Infinity" not in Path(path).read_text()
        return
    assert code in (1, 2), (argv, code, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, (argv, err)
    if code == 1:   # a failure after parsing: one or two lines, nothing else
        assert len(lines) <= 2 and lines[-1].startswith("tinydiff: error:"), (argv, err)
        assert len(errors[0]) < 600, (argv, err)


def options(table: dict[str, list[str]], max_size: int = 3):
    """1..max_size distinct options of ``table``, each with one of its values."""
    return st.dictionaries(st.sampled_from(sorted(table)), st.none(), min_size=1,
                           max_size=max_size).flatmap(
        lambda d: st.fixed_dictionaries({k: st.sampled_from(table[k]) for k in d}))


def flat(chosen: dict[str, str], paths: dict[str, str]) -> list[str]:
    argv = []
    for k, v in chosen.items():
        argv += [k, paths.get(v[1:], v) if v.startswith("@") else v]
    return argv


FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize=not os.environ.get("TINYDIFF_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

PATHS = ["@folder", "@file", "@under_file", "@missing", "@empty"]

TRAIN = {"--steps": ["-1", "0", "1", "2.5", "nan", "x", "3"], "--batch-size": NUMBERS,
         "--lr": NUMBERS, "--weight-decay": NUMBERS, "--grad-clip": NUMBERS, "--ema-decay": NUMBERS,
         "--warmup-steps": NUMBERS, "--timesteps": ["0", "1", "5", "20", "21", "2.5", "x", "nan"],
         "--seed": SEEDS, "--ckpt-every": NUMBERS, "--log-every": NUMBERS, "--hidden-dim": NUMBERS,
         "--num-layers": ["-1", "0", "1", "2", "2.5", "x", str(10**30)],
         "--schedule": ["cosine", "sigmoid", "nope"], "--parameterization": ["v", "x0", "nope"],
         "--out": PATHS, "--dataset": ["moons", "swissroll", "nope"], "--optimizer": ["adamw", "sgd"]}


@FUZZ
@given(chosen=options(TRAIN))
def test_fuzz_train(env, chosen):
    root, run, paths = env
    fresh = root / f"t{abs(hash(json.dumps(chosen, sort_keys=True))) % 10**9}"
    base = {"--steps": "3", "--batch-size": "16", "--hidden-dim": "8", "--num-layers": "1",
            "--timesteps": "30", "--out": str(fresh)}
    argv = ["train", "toy2d", *flat({**base, **chosen}, paths), "--no-progress", "--no-preview"]
    check_outcome(argv, *invoke(argv))


SAMPLE = {"--n": ["-1", "0", "1", "3", "2.5", "x", "nan"],
          "--steps": ["-1", "0", "1", "2", "2.5", "30", "31", str(10**30)],
          "--eta": NUMBERS, "--guidance": NUMBERS, "--label": ["0", "11", "-1", "x", "none", "all"],
          "--batch-size": ["-1", "0", "1", "2.5", str(10**30)], "--seed": SEEDS,
          "--sampler": ["ddpm", "ddim", "nope"], "--out": PATHS, "--save-npy": PATHS + ["@npy"],
          "CHECKPOINT": ["@run", "@folder", "@file", "@missing"]}


@FUZZ
@given(chosen=options(SAMPLE))
def test_fuzz_sample(env, chosen):
    root, run, paths = env
    paths = {**paths, "run": str(run), "npy": str(root / "s.npy")}
    chosen = dict(chosen)
    target = chosen.pop("CHECKPOINT", "@run")
    base = {"--n": "3", "--sampler": "ddim", "--steps": "2", "--out": str(root / "s.png")}
    argv = ["sample", paths[target[1:]], *flat({**base, **chosen}, paths), "--no-progress"]
    check_outcome(argv, *invoke(argv))


EVAL = {"--n": ["-1", "0", "1", "2", "2.5", "x"], "--steps": ["-1", "0", "1", "2.5", "30", "31"],
        "--eta": NUMBERS, "--guidance": NUMBERS, "--seed": SEEDS, "--sampler": ["ddpm", "nope"],
        "--out": PATHS + ["@json"], "CHECKPOINT": ["@run", "@folder", "@file", "@missing"]}


@FUZZ
@given(chosen=options(EVAL))
def test_fuzz_eval(env, chosen):
    root, run, paths = env
    paths = {**paths, "run": str(run), "json": str(root / "m.json")}
    chosen = dict(chosen)
    target = chosen.pop("CHECKPOINT", "@run")
    base = {"--n": "8", "--steps": "2"}
    argv = ["eval", paths[target[1:]], *flat({**base, **chosen}, paths), "--no-progress"]
    check_outcome(argv, *invoke(argv))


SHOW = {"--timesteps": ["-1", "0", "1", "5", "21", "2.5", "x", str(10**30)], "--seed": SEEDS,
        "--schedule": ["linear", "cosine", "nope"], "--dataset": ["moons", "8gaussians", "nope"],
        "--out": PATHS}


@FUZZ
@given(chosen=options(SHOW))
def test_fuzz_show_forward(env, chosen):
    root, run, paths = env
    base = {"--timesteps": "50", "--out": str(root / "f.png")}
    argv = ["show-forward", *flat({**base, **chosen}, paths)]
    check_outcome(argv, *invoke(argv))
