"""The worker process: ``python -m tinydiff.exercises.worker DIR ID...`` grades the learner's files.

Protocol (read by ``runner.run_workspace``): one JSON line {"start": id} before each exercise and
one with the ``Result`` after it, on a private copy of stdout; the learner's prints go to stderr.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tinydiff.exercises.runner import grade_from_workspace


def main(directory: str, ids: list[str]) -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                  # the learner's prints (and C-level writes) go to stderr
    sys.stdout = sys.stderr
    results = grade_from_workspace(Path(directory), ids)  # lazy: each file is loaded once
    for ex_id in ids:
        protocol.write(json.dumps({"start": ex_id}) + "\n")
        result = next(results)
        protocol.write(json.dumps(result.__dict__) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
