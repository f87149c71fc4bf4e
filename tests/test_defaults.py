"""Sampling defaults have one home (tinydiff/defaults.py): the CLI, the evaluation and the demos
read them from there, and the library takes keyword arguments, not parsed options."""
from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

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
    monkeypatch.setattr(defaults, "SAMPLE_SAMPLER", "heun")
    monkeypatch.setattr(defaults, "EVAL_SAMPLER", "euler")
    monkeypatch.setattr(defaults, "SAMPLE_GUIDANCE", 1.5)
    assert _parser("sample").parse_args(["x"]).sampler == "heun"
    assert _parser("sample").parse_args(["x"]).guidance == 1.5
    assert _parser("eval").parse_args(["x"]).sampler == "euler"
    helptext = _parser("eval").format_help()
    assert f"default: {defaults.EVAL_STEPS['toy2d']} for toy2d" in " ".join(helptext.split())


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
