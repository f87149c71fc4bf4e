"""ruff and mypy on autograd/ and tinydiff/, configured in pyproject.toml ([tool.ruff], [tool.mypy]), run as
tests so that `pytest` (and CI) keeps them true. Both come with the test extras; where they are
not installed the tests skip and say so."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_tool(module: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]' installs it)")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing_in_the_packages():
    result = run_tool("ruff", "check", "--no-cache", "--output-format", "concise")
    assert result.returncode == 0, f"ruff check (rules: pyproject.toml [tool.ruff]):\n{result.stdout}{result.stderr}"


def test_mypy_finds_nothing_in_the_packages():
    result = run_tool("mypy")
    assert result.returncode == 0, f"mypy (settings: pyproject.toml [tool.mypy]):\n{result.stdout}{result.stderr}"
