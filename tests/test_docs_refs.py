"""The docs point at real things. In README.md, docs/*.md and the measurement notes that code
comments link to (benchmarks/results/*-measurements.md): every `path.py:name` they cite exists in
that file, every repository path they mention (autograd/..., tinydiff/..., tests/...) exists, and
every relative link (figures included) names a file, and a heading, that exists.

A cited name is found by reading the file with ast, never by importing it: a top-level def or
class, a module-level constant (an assignment at the top level), or ``Class.method`` (a def, or
an assignment such as a dataclass field, in the body of a top-level class).
"""
from __future__ import annotations

import ast
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "benchmarks" / "results").glob("*-measurements.md"))]  # what code comments link to

# `tinydiff/diffusion.py:GaussianDiffusion.q_sample`, `autograd/functional/conv.py:conv2d`, ...
REF = re.compile(r"\b((?:autograd|tinydiff|benchmarks|demos|tests)/[\w/]*\w\.py):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)")
# autograd/tensor.py, tests/test_diffusion_*.py, benchmarks/results/ ... (not inside a longer path)
PATH = re.compile(r"(?<![\w/.])((?:autograd|tinydiff|benchmarks|demos|tests|\.ci)/[\w/*.-]*\w)")
# [text](target) and ![alt](target), an optional "title" after the target
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _names_of(body: list[ast.stmt]) -> set[str]:
    """Names a block defines: its defs and classes, and the plain names it assigns."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


@cache
def defined(path: str) -> frozenset[str]:
    """Every citable name of ``path``: top-level names and ``Class.member`` for each top-level class."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)
    names = set(_names_of(tree.body))
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{member}" for member in _names_of(node.body))
    return frozenset(names)


def slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces to -,
    and -1, -2, ... after a repeated heading."""
    seen: Counter[str] = Counter()
    anchors = set()
    for line in FENCE.sub("", markdown).splitlines():
        if not re.match(r"#{1,6} ", line):
            continue
        base = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        anchors.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return anchors


def citations(doc: Path) -> list[tuple[str, str]]:
    return REF.findall(doc.read_text(encoding="utf-8"))


def paths(doc: Path) -> set[str]:
    return set(PATH.findall(doc.read_text(encoding="utf-8")))


def links(doc: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", doc.read_text(encoding="utf-8")))


def test_the_docs_cite_code_and_link_files():
    # Guards the two tests below against passing because the patterns stopped matching.
    assert sum(len(citations(doc)) for doc in DOCS) >= 60
    assert sum(len(links(doc)) for doc in DOCS) >= 40
    assert len(citations(ROOT / "README.md")) >= 40  # the equation and op table
    assert sum(len(paths(doc)) for doc in DOCS) >= 60


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_function_exists(doc: Path):
    missing = []
    for path, name in citations(doc):
        if not (ROOT / path).is_file():
            missing.append(f"{path}:{name} (no such file)")
        elif name not in defined(path):
            missing.append(f"{path}:{name} (no top-level def, class, constant or Class.member {name!r})")
    assert not missing, f"{doc.relative_to(ROOT)} cites what does not exist:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_mentioned_path_exists(doc: Path):
    # A pattern such as tests/test_diffusion_*.py must match at least one file.
    missing = sorted(p for p in paths(doc) if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists()))
    assert not missing, f"{doc.relative_to(ROOT)} mentions paths that do not exist:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(doc: Path):
    broken = []
    for target in links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in slugs(path.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading #{anchor} in {path.relative_to(ROOT)})")
    assert not broken, f"{doc.relative_to(ROOT)} has broken links:\n  " + "\n  ".join(broken)
