"""The ``tinydiff exercises`` subcommand's parser and handler, light enough that building the
main parser (for any command) imports nothing of the graders."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from tinydiff.exercises import DEFAULT_DIR


def add_parser(sub: Any, formatter: Any = argparse.HelpFormatter) -> None:
    """``tinydiff exercises ...``: called by tinydiff/cli.py with its subparsers object."""
    p = sub.add_parser("exercises", help="learn by doing: write the gradients and samplers, get graded",
                       formatter_class=formatter,
                       description="Exercises in five chapters (gradients by hand, layers, the forward "
                       "process, the reverse process, samplers): you write the function from a stub "
                       "that states what to derive, and tinydiff's property checks (gradcheck, Bayes' "
                       "rule, Monte Carlo, order of accuracy) grade it, with the smallest "
                       "counterexample found. See docs/exercises.md.")
    esub = p.add_subparsers(dest="exercises_command", metavar="ACTION", required=True)
    d = DEFAULT_DIR
    q = esub.add_parser("list", help="chapters and exercises, with their status in the workspace")
    q.add_argument("--dir", default=d, help=f"the workspace (default ./{d})")
    q = esub.add_parser("start", help=f"write the stub files (default folder ./{d})")
    q.add_argument("directory", nargs="?", default=d, metavar="DIR", help=f"where (default ./{d})")
    q.add_argument("--force", action="store_true", help="overwrite existing files (your code is lost)")
    q = esub.add_parser("check", help="grade your functions; exit code 0 only if all asked pass")
    q.add_argument("which", nargs="?", default="all", metavar="ID|CHAPTER|all",
                   help="an exercise (1.3), a chapter (2) or all (default)")
    q.add_argument("--dir", default=d, help=f"the workspace (default ./{d})")
    q.add_argument("--show-solution", action="store_true",
                   help="also show where tinydiff's reference solution lives for failing exercises")
    q.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds per exercise before it counts as an endless loop (default: its own, 60-180)")
    q = esub.add_parser("hint", help="the next hint for one exercise")
    q.add_argument("exercise", metavar="ID", help="the exercise, e.g. 2.4 (see 'tinydiff exercises list')")
    q.add_argument("--dir", default=d, help=f"the workspace that remembers hints shown (default ./{d})")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """The handler of ``tinydiff exercises``; returns the exit status (0 ok, 1 failed checks or an error)."""
    # Imported here, not at the top: the graders load hypothesis, which other commands never need.
    from tinydiff.exercises.commands import check_workspace, hint, list_exercises, start
    try:
        if args.exercises_command == "list":
            list_exercises(args.dir)
        elif args.exercises_command == "start":
            start(args.directory, args.force)
        elif args.exercises_command == "hint":
            hint(args.exercise, args.dir)
        else:
            if args.timeout is not None and not args.timeout > 0:
                raise ValueError(f"--timeout must be a positive number of seconds; got {args.timeout}")
            return 0 if check_workspace(args.which, args.dir, args.show_solution, args.timeout) else 1
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"tinydiff exercises: error: {exc}", file=sys.stderr)
        return 1
    return 0
