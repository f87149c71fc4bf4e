"""The grader's vocabulary: an exercise, a failed property, and hypothesis-driven property runs.

A check raises ``Failure`` naming the property in words, the counterexample, expected and got.
``for_all`` runs a property on hypothesis-drawn examples; hypothesis shrinks a failing example and
replays it last, so the ``Failure`` that escapes describes the *smallest* counterexample found.
``call`` runs the learner's function and turns its exceptions into failures of the exercise.
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

# Examples per property: enough to find shape and sign mistakes on small arrays in a few seconds.
# TINYDIFF_EXERCISE_EXAMPLES lowers it (the grader's own tests) or raises it (a thorough check).
DEFAULT_EXAMPLES = 25
_HERE = os.path.dirname(os.path.abspath(__file__))


def shrinking() -> bool:
    """Shrink failures to the smallest counterexample (default). TINYDIFF_EXERCISE_SHRINK=0 reports
    the first failure found instead: the grader's own tests of planted mistakes use it for speed."""
    return os.environ.get("TINYDIFF_EXERCISE_SHRINK", "1") != "0"


def max_examples() -> int:
    value = os.environ.get("TINYDIFF_EXERCISE_EXAMPLES", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_EXAMPLES


class Failure(AssertionError):
    """A property of the exercise does not hold: ``prop`` in words, plus what shows it."""

    def __init__(self, prop: str, example: str | None = None, expected: Any = None, got: Any = None,
                 kind: str = "failed") -> None:
        super().__init__(prop)
        self.prop, self.example, self.expected, self.got, self.kind = prop, example, expected, got, kind

    def report(self) -> str:
        lines = [self.prop]
        if self.example:
            lines.append(f"counterexample: {self.example}")
        if self.expected is not None or self.got is not None:
            lines.append(f"expected: {fmt(self.expected)}")
            lines.append(f"got:      {fmt(self.got)}")
        return "\n".join(lines)


class NotImplementedYet(Failure):
    def __init__(self, elsewhere: str = "") -> None:
        super().__init__("not implemented yet: the function still raises NotImplementedError" + elsewhere,
                         kind="not implemented")


@dataclass(frozen=True)
class Exercise:
    """One exercise: the function the learner writes, its stub, its hints and its grader."""
    id: str                      # "1.3"
    name: str                    # the function the learner defines, e.g. "tanh_backward"
    title: str                   # one line, for `list` and the docs
    stub: str                    # the signature, a docstring saying what to derive, NotImplementedError
    hints: tuple[str, ...]
    solution: str                # where in tinydiff the reference implementation lives
    grade: Callable[[Callable], str | None]  # raises Failure; may return a line to print on a pass
    time_limit: float = 60.0     # seconds in the worker before it counts as an endless loop
    teaches: str = ""            # for docs/exercises.md

    @property
    def chapter(self) -> int:
        return int(self.id.split(".")[0])


@dataclass
class Result:
    id: str
    passed: bool
    message: str = ""            # the failure report, or a line the check reports on a pass
    kind: str = "passed"         # passed | failed | not implemented | error | timeout | missing
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def fmt(value: Any, limit: int = 6) -> str:
    """A short rendering of a number or array: shape, and its first few values."""
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1)
        body = np.array2string(flat[:limit], precision=5, separator=", ", suppress_small=False)
        more = f" ... ({value.size} values)" if value.size > limit else ""
        return f"array of shape {value.shape}: {body[:-1]}{more}]" if value.ndim else f"{float(value):.6g}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, tuple) and all(isinstance(v, (int, np.integer)) for v in value):
        return str(tuple(int(v) for v in value))
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt(v, limit) for v in value) + ")"
    return str(value)


def describe(**arrays: Any) -> str:
    """'x = array of shape (2,): [...], axis = 1' for a counterexample line."""
    return ", ".join(f"{k} = {fmt(v)}" for k, v in arrays.items())


def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs); NotImplementedError and any other exception become a Failure."""
    try:
        return fn(*args, **kwargs)
    except Failure:
        raise
    except NotImplementedError as exc:
        # Raised by another of the learner's functions (chapter 4 calls chapter 3's alpha_bar)?
        frames = traceback.extract_tb(exc.__traceback__)
        last = frames[-1] if frames else None
        elsewhere = ""
        if last is not None and last.name != getattr(fn, "__name__", last.name) and _HERE not in last.filename:
            elsewhere = (f" (raised by {last.name} in {os.path.basename(last.filename)} line {last.lineno}: "
                         "implement that first)")
        raise NotImplementedYet(elsewhere) from None
    except Exception as exc:  # the learner's bug, reported for this exercise only
        below = traceback.extract_tb(exc.__traceback__)[1:]  # drop this frame
        # the innermost frame outside NumPy and the grader: the learner's line
        own = [f for f in below if _HERE not in f.filename and "numpy" not in f.filename]
        frame = own[-1] if own else (below[-1] if below else None)
        where = f" (at {os.path.basename(frame.filename)} line {frame.lineno}: {frame.line})" if frame else ""
        raise Failure(f"your code raised {type(exc).__name__}: {exc}{where}", kind="error") from None


def as_array(value: Any, what: str) -> np.ndarray:
    """The learner's return value as a float64 array, or a Failure saying what came back."""
    if value is None:
        raise Failure(f"{what} is None: did you forget to return it?")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Failure(f"{what} should be an array; got {type(value).__name__}") from None
    return arr


def expect_shape(value: Any, shape: tuple[int, ...], what: str, example: str, advice: str = "") -> np.ndarray:
    arr = as_array(value, what)
    if arr.shape != tuple(shape):
        raise Failure(f"{what} has shape {arr.shape}, expected {tuple(shape)}" + (f": {advice}" if advice else ""),
                      example, tuple(shape), arr.shape)
    return arr


def expect_close(got: Any, expected: np.ndarray, prop: str, example: str, rtol: float = 1e-6,
                 atol: float = 1e-8) -> None:
    got = expect_shape(got, np.shape(expected), prop.split(":")[0], example)
    if not np.all(np.isfinite(got)):
        raise Failure(f"{prop} (got non-finite values)", example, expected, got)
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        raise Failure(prop, example, np.asarray(expected), got)


def for_all(strategy: st.SearchStrategy, prop: Callable[[Any], None], examples: int | None = None) -> None:
    """prop(example) for hypothesis-drawn examples; a failure escapes as the shrunk example's."""
    @settings(max_examples=examples or max_examples(), database=None, deadline=None, derandomize=True,
              verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False,
              suppress_health_check=list(HealthCheck),
              phases=list(Phase) if shrinking() else [p for p in Phase if p is not Phase.shrink])
    @given(strategy)
    def run(example: Any) -> None:
        if stub:
            return
        try:
            prop(example)
        except NotImplementedYet as exc:  # a stub fails on every input: nothing to shrink
            stub.append(exc)
    stub: list[NotImplementedYet] = []
    run()
    if stub:
        raise stub[0]
