"""Build docs/derivatives.md: every op of the engine with the derivative its docstring states.

    python -m autograd.derivatives           # (re)write docs/derivatives.md
    python -m autograd.derivatives --check   # exit 1 if the committed file is out of date

An op is a public function of ``autograd.ops.*`` or ``autograd.functional.*`` that users can
reach (a Tensor method or operator, ``autograd.<name>``, ``F.<name>``) or that records a graph
node itself (calls ``make_node``), plus the Tensor methods that record a node (``to``,
``astype``). Helpers that work on plain arrays are not ops. The first paragraph of each op's
docstring states the op and its derivative; the table copies it verbatim, so a docstring
that forgets its derivative shows up here (and fails tests/test_derivatives_doc.py). The plain
versions in ``autograd/functional/*_reference.py`` are not listed: each restates an op that is.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import autograd
import autograd.functional as F
from autograd.tensor import Tensor

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "derivatives.md"
PACKAGES = ("autograd.ops", "autograd.functional")

# How each operator method reads in code.
OPERATORS = {"__add__": "a + b", "__sub__": "a - b", "__mul__": "a * b", "__truediv__": "a / b",
             "__pow__": "a ** b", "__neg__": "-a", "__matmul__": "a @ b", "__getitem__": "x[index]"}

# A derivative as written in the docstrings: dy/dx, d/da, dL/dW[o], d erf/da, or dx = ...
DERIVATIVE = re.compile(r"\bd[\w\[\], ]*/\s*d|\bd[A-Za-z]\w*\s*=")


@dataclass(frozen=True)
class Op:
    name: str          # the function's name
    module: str        # where forward and backward are written
    usage: tuple[str, ...]  # how users call it
    doc: str           # the docstring's first paragraph, on one line
    line: int          # for ordering within the module


def first_paragraph(fn: Callable) -> str:
    """The docstring up to its first blank line, whitespace collapsed, rst ``literals`` plain."""
    doc = inspect.getdoc(fn) or ""
    paragraph = doc.split("\n\n")[0]
    return re.sub(r"``(.*?)``", r"\1", " ".join(paragraph.split()))


def _modules() -> list[ModuleType]:
    """The op modules that exist now (functional may still be incomplete, or not importable)."""
    modules = []
    for package_name in PACKAGES:
        package: ModuleType | None
        try:
            package = importlib.import_module(package_name)
        except ImportError:  # autograd.functional imports every submodule; try them one by one
            package = sys.modules.get(package_name)
            if package is None:
                continue
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.name.endswith("_reference"):  # plain versions of ops listed here already
                continue
            try:
                modules.append(importlib.import_module(f"{package_name}.{info.name}"))
            except ImportError:
                continue
    return modules


def _public_usages() -> dict[int, list[str]]:
    """id(function) -> the ways users reach it: x.method(), a + b, autograd.f, F.f."""
    usages: dict[int, list[str]] = {}

    def add(fn: object, usage: str) -> None:
        if inspect.isfunction(fn):
            usages.setdefault(id(fn), []).append(usage)

    for name, attr in vars(Tensor).items():
        if name in OPERATORS:
            add(attr, OPERATORS[name])
        elif not name.startswith("_"):
            add(attr, f"x.{name}(...)")
    for name in autograd.__all__:
        add(getattr(autograd, name), f"autograd.{name}")
    for name in F.__all__:
        add(getattr(F, name), f"F.{name}")
    return usages


def _records_a_node(fn: Callable, seen: frozenset[str] = frozenset()) -> bool:
    """True if ``fn`` calls ``make_node``, itself or through its module's private helpers (a
    composition of public ops, like a readable reference version, records no node of its own)."""
    names = fn.__code__.co_names
    if "make_node" in names:
        return True
    module_globals = fn.__globals__
    return any(name.startswith("_") and name not in seen and inspect.isfunction(helper := module_globals.get(name))
               and helper.__module__ == fn.__module__ and _records_a_node(helper, seen | {name})
               for name in names)


def collect() -> list[Op]:
    """Every op, grouped by module in a fixed order, in source order within a module."""
    usages = _public_usages()
    ops = []
    for module in _modules():
        for name, fn in vars(module).items():
            if (not inspect.isfunction(fn) or fn.__module__ != module.__name__ or name.startswith("_")
                    or name != fn.__name__):  # aliases (cat = concatenate) are listed as usages
                continue
            if id(fn) in usages or _records_a_node(fn):
                ops.append(Op(name, module.__name__, tuple(usages.get(id(fn), [])), first_paragraph(fn),
                              fn.__code__.co_firstlineno))
    for name in ("to", "astype"):
        fn = getattr(Tensor, name)
        ops.append(Op(name, "autograd.tensor", (f"x.{name}(...)",), first_paragraph(fn),
                      fn.__code__.co_firstlineno))
    order = {m: i for i, m in enumerate(["autograd.tensor", "autograd.ops", "autograd.functional"])}
    return sorted(ops, key=lambda op: (order[op.module.rsplit(".", 1)[0] if op.module != "autograd.tensor"
                                             else op.module], op.module, op.line))


def has_derivative(op: Op) -> bool:
    return bool(DERIVATIVE.search(op.doc))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(ops: list[Op] | None = None) -> str:
    """The whole of docs/derivatives.md."""
    ops = collect() if ops is None else ops
    lines = [
        "# Derivatives of every op",
        "",
        "Generated by `python -m autograd.derivatives` from the first paragraph of each op's docstring;",
        "do not edit by hand (`tests/test_derivatives_doc.py` fails when this file is out of date).",
        "Each op's forward and backward sit side by side in the module named; `g` is dL/d(output), the",
        "gradient arriving from above, and every derivative is checked against finite differences in",
        "`tests/`. The ops with a fast path (conv2d, group_norm, group_norm_silu, silu, linear_silu,",
        "mlp_silu, dropout, scaled_dot_product_attention) also have a plain version, forward and backward as on",
        "paper, in the sibling `autograd/functional/*_reference.py` that the module's docstring names.",
        "",
        "| op | used as | module | definition and derivative |",
        "| --- | --- | --- | --- |",
    ]
    for op in ops:
        usage = ", ".join(f"`{u}`" for u in op.usage) or "not exported"
        lines.append(f"| `{op.name}` | {_cell(usage)} | `{op.module}` | `{_cell(op.doc)}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date, write nothing")
    parser.add_argument("--output", type=Path, default=DOC_PATH, help=f"where to write (default: {DOC_PATH})")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m autograd.derivatives", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    ops = collect()
    missing = [op.name for op in ops if not has_derivative(op)]
    print(f"wrote {args.output}: {len(ops)} ops" + (f"; no derivative stated for {missing}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
