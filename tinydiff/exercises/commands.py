"""What ``tinydiff exercises list | start | check | hint`` do, and ``check()`` for notebooks."""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from tinydiff.exercises import workspace
from tinydiff.exercises.grading import Exercise, Result
from tinydiff.exercises.registry import CHAPTERS, EXERCISES, select
from tinydiff.exercises.runner import grade, run_workspace


class _TimeUp(BaseException):
    """The time limit of an in-process check; a BaseException so no ``except Exception`` (the
    learner's or hypothesis's) swallows it and carries on."""


MARK = {"passed": "PASS", "not implemented": "TODO", "timeout": "TIME"}


def format_result(ex: Exercise, result: Result, show_solution: bool = False) -> str:
    """'PASS 1.3 tanh_backward ...' or 'FAIL 1.3 ...' and the indented report."""
    head = f"{MARK.get(result.kind, 'FAIL')} {ex.id:<5} {ex.name:<22} {ex.title}"
    lines = [head]
    if result.message:
        lines += ["      " + line for line in result.message.splitlines()]
    if result.passed or show_solution:
        lines.append(f"      reference solution: {ex.solution}")
    return "\n".join(lines)


def summary(results: list[Result], seconds: float) -> str:
    passed = sum(r.passed for r in results)
    todo = sum(r.kind == "not implemented" for r in results)
    text = f"{passed} of {len(results)} passed"
    if todo:
        text += f", {todo} not implemented yet"
    return text + f" ({seconds:.1f} s)"


def _remember(directory: Path, results: list[Result]) -> None:
    state = workspace.read_state(directory)
    state.setdefault("results", {}).update({r.id: r.kind for r in results})
    workspace.write_state(directory, state)


def check_workspace(which: str | None, directory: str | Path, show_solution: bool = False,
                    time_limit: float | None = None, out: TextIO | None = None) -> bool:
    """Grade the workspace's exercises (in worker subprocesses), printing each result; True if all pass."""
    out = out or sys.stdout
    exercises = select(which)
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no workspace at {directory}: run 'tinydiff exercises start {directory}' first")
    start = time.perf_counter()
    results = []
    for result in run_workspace(directory, exercises, time_limit):
        results.append(result)
        print(format_result(EXERCISES[result.id], result, show_solution), file=out, flush=True)
    _remember(directory, results)
    print(summary(results, time.perf_counter() - start), file=out)
    return all(r.passed for r in results)


def check(exercise_id: str, fn: Callable | None = None, *, dir: str | Path = workspace.DEFAULT_DIR,
          show_solution: bool = False, time_limit: float | None = None) -> bool:
    """Grade one exercise and print the verdict; True if it passes.

        from tinydiff.exercises import check
        check("1.3", my_tanh_backward)       # your function, graded in this process
        check("2")                           # a chapter (or "all") from the workspace files

    With ``fn``, the checks run here (a notebook's function cannot be handed to a subprocess),
    stopped after the exercise's time limit where the platform allows (SIGALRM, main thread).
    Without it, the workspace in ``dir`` is graded in subprocesses, as the command line does.
    """
    if fn is None:
        return check_workspace(exercise_id, dir, show_solution, time_limit)
    if exercise_id not in EXERCISES:
        raise ValueError(f"no exercise {exercise_id!r}; ids are 1.1 .. {list(EXERCISES)[-1]} "
                         "(see 'tinydiff exercises list')")
    ex = EXERCISES[exercise_id]
    limit = time_limit or ex.time_limit
    alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()

    def stop(signum: int, frame: Any) -> None:
        raise _TimeUp()
    if alarm:
        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        try:
            result = grade(ex, fn)
        except _TimeUp:
            result = Result(ex.id, False, f"took longer than {limit:g} s and was stopped: an endless loop, "
                            "or far too much work?", "timeout", limit)
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    print(format_result(ex, result, show_solution))
    return result.passed


# --------------------------------------------------------------------------- list, start, hint

def list_exercises(directory: str | Path, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    directory = Path(directory)
    state = workspace.read_state(directory).get("results", {})
    where = (f"workspace {directory}" if directory.is_dir() else
             f"no workspace at {directory} yet: 'tinydiff exercises start' writes one")
    print(f"{len(EXERCISES)} exercises in {len(CHAPTERS)} chapters; {where}", file=out)
    for chapter in CHAPTERS:
        file_state = "" if not (directory / chapter.filename).exists() else f"  ({chapter.filename})"
        print(f"\nChapter {chapter.number}: {chapter.title}{file_state}", file=out)
        for ex in chapter.exercises:
            status = state.get(ex.id, "not checked" if directory.is_dir() else "")
            print(f"  {ex.id:<5} {ex.name:<22} {ex.title:<66} {status}".rstrip(), file=out)
    print("\nGrade with 'tinydiff exercises check [ID | CHAPTER | all]'.", file=out)


def start(directory: str | Path, force: bool = False, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    written = workspace.write(directory, force)
    for path, new in written:
        print(f"{'wrote' if new else 'kept '} {path}" + ("" if new else " (exists; --force overwrites it)"), file=out)
    print(f"\nOpen the files in an editor, or as notebooks (jupytext percent format). Then:\n"
          f"  tinydiff exercises check 1.1 --dir {directory}\n"
          f"  tinydiff exercises hint 1.1 --dir {directory}", file=out)


def hint(exercise_id: str, directory: str | Path, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if exercise_id not in EXERCISES:
        raise ValueError(f"no exercise {exercise_id!r}; see 'tinydiff exercises list'")
    ex = EXERCISES[exercise_id]
    state = workspace.read_state(directory)
    shown = state.setdefault("hints", {}).get(ex.id, 0)
    k = min(shown, len(ex.hints) - 1)
    more = (f"(hint {k + 1} of {len(ex.hints)}" + ("; run again for the next)" if k + 1 < len(ex.hints)
                                                   else "; that was the last)"))
    print(f"{ex.id} {ex.name}: {ex.hints[k]}\n{more}", file=out)
    state["hints"][ex.id] = k + 1
    workspace.write_state(directory, state)
