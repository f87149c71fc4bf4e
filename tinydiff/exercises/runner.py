"""Grading, in this process (``grade``) or in a worker subprocess with a time limit (``run_workspace``).

The worker (``python -m tinydiff.exercises.worker DIR ID...``) loads the learner's chapter files
and grades the exercises one after another, announcing each start and result as a JSON line on
its own copy of stdout (the learner's prints go to stderr). The parent waits on those lines with
each exercise's time limit: an endless loop or a crash of the interpreter becomes one failed
exercise, and a fresh worker carries on with the rest.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tinydiff.exercises import workspace
from tinydiff.exercises.grading import Exercise, Failure, Result
from tinydiff.exercises.registry import EXERCISES, chapter_of


def grade(exercise: Exercise, fn: Any) -> Result:
    """Run the exercise's checks on the learner's function ``fn``, in this process."""
    start = time.perf_counter()
    if not callable(fn):
        return Result(exercise.id, False, f"{exercise.name} is not a function (got {type(fn).__name__})",
                      "missing")
    try:
        line = exercise.grade(fn)
    except Failure as f:
        return Result(exercise.id, False, f.report(), f.kind, time.perf_counter() - start)
    except Exception as exc:  # a learner's object that breaks the grader itself (e.g. a bad return type)
        last = traceback.extract_tb(exc.__traceback__)[-1]
        return Result(exercise.id, False, f"checking {exercise.name} raised {type(exc).__name__}: {exc} "
                      f"(in {Path(last.filename).name} line {last.lineno})", "error",
                      time.perf_counter() - start)
    return Result(exercise.id, True, line or "", "passed", time.perf_counter() - start)


def grade_from_workspace(directory: Path, ids: Sequence[str]) -> Iterator[Result]:
    """Grade exercises from the learner's files in this process (what the worker runs)."""
    loaded: dict[str, tuple] = {}
    for ex_id in ids:
        ex = EXERCISES[ex_id]
        path = directory / chapter_of(ex).filename
        if not path.exists():
            yield Result(ex_id, False, f"{path} does not exist: run 'tinydiff exercises start {directory}'",
                         "missing")
            continue
        if path.name not in loaded:
            loaded[path.name] = workspace.load(path)
        namespace, errors, setup_error = loaded[path.name]
        if ex_id in errors:
            yield Result(ex_id, False, errors[ex_id], "error")
        elif setup_error:
            yield Result(ex_id, False, f"the file's setup failed, so nothing in it could run: {setup_error}",
                         "error")
        elif ex.name not in namespace:
            yield Result(ex_id, False, f"{path.name} defines no function {ex.name} (did you rename it?)",
                         "missing")
        else:
            yield grade(ex, namespace[ex.name])


def _reader(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_workspace(directory: str | Path, exercises: Sequence[Exercise], time_limit: float | None = None,
                  ) -> Iterator[Result]:
    """Grade ``exercises`` from the workspace in worker subprocesses; yields results as they come.

    Each exercise gets its own time limit (``time_limit`` overrides them all); one that runs
    over, or kills its interpreter, fails, and a new worker goes on with the next.
    """
    directory = Path(directory).resolve()
    pending = [ex.id for ex in exercises]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    while pending:
        proc = subprocess.Popen([sys.executable, "-m", "tinydiff.exercises.worker", str(directory), *pending],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        current: str | None = None
        started = time.monotonic()
        while True:
            limit = (time_limit or EXERCISES[current].time_limit) if current else 60.0  # 60 s to start up
            try:
                line = lines.get(timeout=max(0.0, started + limit - time.monotonic()))
            except queue.Empty:
                proc.kill()
                proc.wait()
                if current is None:  # the worker never started: nothing will go better next time
                    for ex_id in pending:
                        yield Result(ex_id, False, "the grader's worker did not start within 60 s", "error")
                    return
                yield Result(current, False, f"took longer than {limit:g} s and was stopped: an endless loop, "
                             "or far too much work?", "timeout", limit)
                pending.remove(current)
                break
            if line is None:  # the worker exited
                code = proc.wait()
                if current is not None:
                    yield Result(current, False, f"the Python process running your code died (exit code {code}) "
                                 "while checking this exercise: a crash, or a call to exit()?", "error")
                    pending.remove(current)
                elif pending:
                    for ex_id in pending:
                        yield Result(ex_id, False, f"the grader's worker exited (code {code}) before "
                                     "checking this exercise", "error")
                    return
                break
            message = json.loads(line)
            if "start" in message:
                current, started = message["start"], time.monotonic()
                continue
            result = Result(**message)
            pending.remove(result.id)
            current = None
            started = time.monotonic()
            yield result
        if proc.poll() is None:
            proc.kill()
            proc.wait()
