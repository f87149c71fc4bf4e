"""The engine's core reads in one sitting: autograd/tensor.py holds the Tensor, make_node,
backward and no_grad, and stays within a line budget; the ops, their threaded kernels
(autograd/ops/_blocks.py) and host memory tuning (autograd/malloc.py) live elsewhere."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

CORE = Path(importlib.import_module("autograd.tensor").__file__)
# About micrograd's engine.py plus what a NumPy/CuPy tensor adds (dtype, device, no_grad, a
# graph walk that never recurses): 300 lines, docstrings and comments included.
LINE_BUDGET = 300


def test_the_core_stays_within_its_line_budget():
    lines = len(CORE.read_text().splitlines())
    assert lines <= LINE_BUDGET, (f"autograd/tensor.py has {lines} lines, over its budget of "
                                  f"{LINE_BUDGET}: move helpers out (ops to autograd/ops/, kernels to _blocks.py)")


def test_the_core_defines_the_engine_and_tunes_nothing_on_import():
    tree = ast.parse(CORE.read_text())
    names = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert {"Tensor", "make_node", "no_grad"} <= names
    assert "backward" in {f.name for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "Tensor"
                          for f in c.body if isinstance(f, ast.FunctionDef)}
    # Nothing but definitions and imports runs at import: no call at module level.
    calls = [ast.unparse(node) for node in tree.body if isinstance(node, ast.Expr)
             and isinstance(node.value, ast.Call)]
    assert not calls, f"autograd/tensor.py runs code on import: {calls}"
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "ctypes" not in imported
