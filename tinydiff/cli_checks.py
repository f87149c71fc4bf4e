"""Checks of command-line values, so that bad input is refused up front, naming the option.

- argparse ``type=`` functions (``finite_float``, ``positive_int``, ``nonnegative_int``): a bad
  value is a usage error (exit 2) that says what would be valid, e.g.
  ``argument --lr: expected a finite number, got 'inf'``;
- ``output_file(path, option)``: where a command will write a file: not a folder, not in a
  folder that is a file;
- ``check_resume(...)``: what ``train --resume`` may not silently ignore (another task, fewer
  steps than already done);
- ``nonfinite_entry(result)``: where a command's results hold NaN or inf, if anywhere;
- ``option_message(text)``: a library message naming ``TrainConfig.field`` rewritten to name
  the command-line option ``--field`` instead.
"""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Python's int() accepts '1_000' and ' 7 '; these accept what a user would type, nothing more.
_INT = re.compile(r"[+-]?\d+")


def finite_float(text: str) -> float:
    """A float that is neither NaN nor infinite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


MAX_INT = 2**63 - 1   # what an int64 holds; larger counts and sizes fit no array


def _int(text: str, low: int, what: str) -> int:
    if not _INT.fullmatch(text.strip()) or len(text.strip()) > 40:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= MAX_INT:
        raise argparse.ArgumentTypeError(f"expected {what} (at most 2^63 - 1), got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int(text, 1, "a positive integer (1, 2, ...)")


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int(text, 0, "an integer >= 0")


def output_file(path: str | Path, option: str, suffix: str | None = None) -> Path:
    """``path`` as a place to write a file: refuse a folder, or a parent that is a file. With
    ``suffix``, a name without one gets it, as matplotlib (.png) and numpy.save (.npy) would add
    it anyway: the command then prints the path it really writes."""
    if not str(path).strip():
        raise ValueError(f"{option}: an empty path; give a file name")
    p = Path(path)
    if suffix and not p.suffix and not p.is_dir():
        p = p.with_name(p.name + suffix)
    if p.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give a file name, e.g. {p / 'out.png'}"
                         if option != "--save-npy" else
                         f"{option} {path}: is a folder; give a file name, e.g. {p / 'samples.npy'}")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
    return p


def output_folder(path: str | Path, option: str) -> Path:
    """``path`` as a folder to write into: refuse an existing file (here or above)."""
    if not str(path).strip():
        raise ValueError(f"{option}: an empty path; give a folder name (it is created if missing)")
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            raise ValueError(f"{option} {path}: {q} is a file; give a folder (it is created if "
                             f"missing)")
    return p


def check_resume(task: str, saved_task: str, done: int, steps: int, checkpoint: Any) -> None:
    """Refuse a resumption that would silently do something else than asked."""
    if task != saved_task:
        raise ValueError(f"--resume: {checkpoint} is a {saved_task} run, not {task}; use "
                         f"'tinydiff train {saved_task} --resume' or another --out")
    if steps < done:
        raise ValueError(f"--steps {steps}: the run in {checkpoint} has already done {done} steps; "
                         f"--steps with --resume is the new total, so give more than {done}")


def nonfinite_entry(value: Any, where: str = "") -> str | None:
    """The path (e.g. 'bpd.bpd') of the first NaN or infinite number in nested dicts and lists
    of results, or None: a command must not report such a number as if it were a result."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            return None if math.isfinite(float(value)) else where or "<result>"
        except (TypeError, ValueError):
            return None
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        bad = nonfinite_entry(item, f"{where}.{key}" if where else str(key))
        if bad is not None:
            return bad
    return None


def option_message(text: str) -> str:
    """'TrainConfig.weight_decay=inf is invalid: ...' -> '--weight-decay inf is invalid: ...'."""
    return re.sub(r"TrainConfig\.(\w+)=(\S+)",
                  lambda m: f"--{m.group(1).replace('_', '-')} {m.group(2)}", text)
