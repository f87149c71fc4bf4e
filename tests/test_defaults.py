"""Sampling defaults have one home (tinydiff/defaults.py): the CLI, the evaluation and the demos
read them from there, and the library takes keyword arguments, not parsed options."""
from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinydiff import cli, defaults, evaluate

ROOT = Path(__file__).resolve().parent.parent


def _parser(*words):
    parser = cli.build_parser()
    for word in words:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[word]
    return parser


@pytest.mark.parametrize("n", [0, 1, 9, 10, 23, 64, 1001])
def test_balanced_labels_count_every_class_equally_often(n):
    labels = defaults.balanced_labels(n)
    counts = np.bincount(labels, minlength=10)
    assert labels.dtype == np.int64 and len(labels) == n and counts.sum() == n
    assert counts.max() - counts.min() <= (1 if n else 0)
    assert list(labels[:10]) == list(range(min(n, 10)))      # 0, 1, ..., 9 first


def test_clipping_is_on_for_images_only():
    assert defaults.clips_x0("mnist") and not defaults.clips_x0("toy2d")


def test_the_cli_reads_its_defaults_from_the_defaults_module(monkeypatch):
    # Change a default in its home: the parsers built afterwards follow it.
    monkeypatch.setitem(defaults.SAMPLE_SAMPLER, "mnist", "heun")
    monkeypatch.setattr(defaults, "EVAL_SAMPLER", "euler")
    monkeypatch.setattr(defaults, "SAMPLE_GUIDANCE", 1.5)
    assert "default: ddpm for toy2d, heun for mnist" in " ".join(_parser("sample").format_help().split())
    assert _parser("sample").parse_args(["x"]).guidance == 1.5
    assert _parser("eval").parse_args(["x"]).sampler == "euler"
    helptext = _parser("eval").format_help()
    assert f"default: {defaults.EVAL_STEPS['toy2d']} for toy2d" in " ".join(helptext.split())


class _Stop(Exception):
    """Raised by a stand-in for the sampler, once it has seen what it was asked for."""


def _fake_run(task):
    config = SimpleNamespace(task=task, timesteps=1000, class_cond=False, parameterization="eps",
                             dataset="moons" if task == "toy2d" else "mnist")
    return SimpleNamespace(config=config, model=None, diffusion=None, step=0)


@pytest.mark.parametrize("task, want", [("toy2d", ("ddpm", None, 0.0)), ("mnist", ("ddim", 100, 1.0))])
def test_sample_picks_the_sampler_steps_and_eta_of_the_checkpoints_task(monkeypatch, tmp_path, task, want):
    # The defaults depend on the task, which only the checkpoint tells: resolved after loading it.
    asked = {}

    def fake_generate(model, diffusion, n, shape, **kw):
        asked.update(kw)
        raise _Stop

    monkeypatch.setattr(cli, "load_run", lambda path, **kw: _fake_run(task))
    monkeypatch.setattr(cli, "generate", fake_generate)
    monkeypatch.setattr(cli, "sample_shape", lambda cfg: (2,))
    def sample(*words):
        with pytest.raises(_Stop):   # cmd_sample itself: main() would turn the exception into exit 1
            cli.cmd_sample(cli.build_parser().parse_args(["sample", str(tmp_path / "c.npz"),
                                                          "--out", str(tmp_path / "s.png"), *words]))
    sample()
    assert (asked["sampler"], asked["steps"], asked["eta"]) == want
    # An explicit option wins, and a sampler other than ddim gets no eta of its own.
    sample("--sampler", "heun")
    assert (asked["sampler"], asked["steps"], asked["eta"]) == ("heun", defaults.SAMPLE_STEPS[task], 0.0)
    sample("--sampler", "ddim", "--eta", "0.5", "--steps", "7")
    assert (asked["sampler"], asked["steps"], asked["eta"]) == ("ddim", 7, 0.5)


@pytest.mark.parametrize("task", ["toy2d", "mnist"])
def test_eval_takes_the_eta_of_the_checkpoints_task(monkeypatch, task):
    seen = {}

    def capture(run, opt):
        seen["eta"] = opt.eta
        return {}

    monkeypatch.setattr(evaluate, "load_run", lambda path, **kw: _fake_run(task))
    monkeypatch.setattr(evaluate, "_evaluate_toy", capture)
    monkeypatch.setattr(evaluate, "_evaluate_mnist", capture)
    evaluate.evaluate_checkpoint("c.npz")
    assert seen["eta"] == defaults.EVAL_ETA[task]
    evaluate.evaluate_checkpoint("c.npz", sampler="heun")
    assert seen["eta"] == 0.0
    evaluate.evaluate_checkpoint("c.npz", eta=0.25)
    assert seen["eta"] == 0.25


def test_mnist_samples_with_ddpms_noise_and_toy2d_without():
    # The measured choice (docs/recipes.md): eta = 1 for the UNet's images, the plain chains for toy 2D.
    assert defaults.SAMPLE_ETA == {"toy2d": 0.0, "mnist": 1.0} == defaults.PREVIEW_ETA
    assert defaults.default_eta(defaults.SAMPLE_ETA, "mnist", "ddpm") == 0.0


def test_evaluate_checkpoint_takes_keyword_arguments_with_the_shared_defaults():
    params = inspect.signature(evaluate.evaluate_checkpoint).parameters
    assert [p.kind for p in list(params.values())[1:]] == [inspect.Parameter.KEYWORD_ONLY] * (len(params) - 1)
    assert params["sampler"].default == defaults.EVAL_SAMPLER
    assert params["bpd_n"].default == evaluate.MNIST_BPD_N


@pytest.mark.parametrize("task", ["toy2d", "mnist"])
def test_the_demos_take_their_sampling_defaults_from_the_defaults_module(monkeypatch, task):
    monkeypatch.setitem(defaults.PREVIEW_STEPS, task, 7)
    spec = importlib.util.spec_from_file_location(f"demo_defaults_{task}", ROOT / "demos" / f"{task}.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.parse_args([]).sample_steps == 7
