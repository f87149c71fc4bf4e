"""Learn by doing: exercises whose grader is tinydiff's own property checks.

    tinydiff exercises list | start [DIR] | check [ID | CHAPTER | all] [--dir DIR] | hint ID

    >>> from tinydiff.exercises import check
    >>> check("1.3", my_tanh_backward)   # doctest: +SKIP

Modules: ``grading`` (failures, hypothesis runs), ``ch1_gradients`` .. ``ch5_samplers`` (each
chapter's stubs and checks), ``registry`` (the chapters), ``workspace`` (the learner's files),
``runner`` (the subprocess with a time limit), ``commands`` (the CLI), ``solutions`` (tinydiff's
own implementation of every exercise, for the grader's tests and ``--show-solution``).
"""
from typing import Any

__all__ = ["check", "CHAPTERS", "EXERCISES"]

DEFAULT_DIR = "tinydiff-exercises"  # the workspace, relative to where the command runs


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): `tinydiff --help` builds this package's parser without loading the graders
    # and hypothesis; `from tinydiff.exercises import check` loads them on first use.
    if name == "check":
        from tinydiff.exercises.commands import check  # lazy, as said above
        return check
    if name in ("CHAPTERS", "EXERCISES"):
        from tinydiff.exercises import registry  # lazy, as said above
        return getattr(registry, name)
    raise AttributeError(f"module 'tinydiff.exercises' has no attribute {name!r}")
