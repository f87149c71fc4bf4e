"""The learner's workspace: one jupytext percent-format file per chapter (``# %%`` cells, so it
opens as a notebook too), and a small JSON file remembering results and hints shown.

``load`` executes a chapter file cell by cell, so a syntax error or an exception in one
exercise's cell is that exercise's failure, not the whole file's.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from tinydiff.exercises import DEFAULT_DIR  # noqa: F401 (re-exported)
from tinydiff.exercises.registry import CHAPTERS, Chapter

STATE_FILE = ".tinydiff-exercises.json"
_CELL = re.compile(r"^# %%(.*)$")
_EXERCISE = re.compile(r"Exercise (\d+\.\d+)")

HEADER = """# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---
"""


def _comment(text: str) -> str:
    return "\n".join("# " + line if line else "#" for line in text.splitlines())


def chapter_text(chapter: Chapter, bodies: dict[str, str] | None = None) -> str:
    """The chapter's workspace file; ``bodies`` replaces exercises' stubs (the grader's tests)."""
    parts = [HEADER, "# %% [markdown]\n" + _comment(
        f"# Chapter {chapter.number}: {chapter.title}\n\n{chapter.intro}\n\n"
        f"Replace each `raise NotImplementedError` with your code, then run\n"
        f"`tinydiff exercises check {chapter.number}` (one exercise: `tinydiff exercises check "
        f"{chapter.exercises[0].id}`),\nor in a notebook: `from tinydiff.exercises import check; "
        f"check(\"{chapter.exercises[0].id}\", {chapter.exercises[0].name})`.\n"
        f"Stuck? `tinydiff exercises hint {chapter.exercises[0].id}` shows one hint at a time.") + "\n",
             "# %%\n" + chapter.setup]
    for ex in chapter.exercises:
        body = (bodies or {}).get(ex.id, ex.stub)
        parts.append(f"# %% Exercise {ex.id}: {ex.title}\n{body}")
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def write(directory: str | Path, force: bool = False,
          bodies: dict[str, str] | None = None) -> list[tuple[Path, bool]]:
    """Write every chapter's file; an existing file is kept unless ``force``. [(path, written)]."""
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a folder; pick another DIR")
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for chapter in CHAPTERS:
        path = root / chapter.filename
        if path.exists() and not force:
            out.append((path, False))
            continue
        path.write_text(chapter_text(chapter, bodies), encoding="utf-8")
        out.append((path, True))
    return out


def load(path: Path) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """Execute a chapter file cell by cell in one namespace.

    Returns (namespace, {exercise id: error of its cell}, error of a setup cell or None)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    cells: list[tuple[int, str, list[str]]] = []  # (first line index, header, lines)
    for i, line in enumerate(lines):
        m = _CELL.match(line.rstrip("\n"))
        if m or not cells:
            cells.append((i, m.group(1) if m else "", []))
        cells[-1][2].append(line)
    namespace: dict[str, Any] = {"__name__": f"tinydiff_exercises_{path.stem}", "__file__": str(path)}
    errors: dict[str, str] = {}
    setup_error = None
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so chapter 4 can import the learner's chapter 3
    for start, header, body in cells:
        if "[markdown]" in header:
            continue
        m = _EXERCISE.search(header)
        try:
            code = compile("\n" * start + "".join(body), str(path), "exec")
            exec(code, namespace)
        except SyntaxError as exc:
            message = f"syntax error in {path.name} line {exc.lineno}: {exc.msg}"
            if exc.text:
                message += f"\n    {exc.text.strip()}"
            if m:
                errors[m.group(1)] = message
            else:
                setup_error = setup_error or message
        except Exception as exc:  # the learner's cell raised at import time
            message = f"running the cell in {path.name} raised {type(exc).__name__}: {exc}"
            if m:
                errors[m.group(1)] = message
            else:
                setup_error = setup_error or message
    return namespace, errors, setup_error


# --------------------------------------------------------------------------- remembered state

def read_state(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def write_state(directory: str | Path, state: dict[str, Any]) -> None:
    path = Path(directory) / STATE_FILE
    if path.parent.is_dir():
        path.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
