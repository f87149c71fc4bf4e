"""Measurements live in benchmarks/results/ and docs/, not in comments: every link a comment or
docstring in autograd/ or tinydiff/ makes to them names a file that exists and a heading in it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"((?:benchmarks/results|docs)/[\w.-]+\.md)(?:#([\w-]+))?")


def slug(heading: str) -> str:
    """A Markdown heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_measurement_link_in_the_engine_resolves():
    links = [(path, m.group(1), m.group(2)) for package in ("autograd", "tinydiff")
             for path in sorted((ROOT / package).rglob("*.py"))
             for m in LINK.finditer(path.read_text())]
    assert len(links) >= 10  # the comments do link to their numbers
    for path, target, anchor in links:
        doc = ROOT / target
        assert doc.is_file(), f"{path.relative_to(ROOT)} links to {target}, which does not exist"
        if anchor:
            anchors = {slug(line.lstrip("#")) for line in doc.read_text().splitlines() if line.startswith("#")}
            assert anchor in anchors, f"{path.relative_to(ROOT)} links to {target}#{anchor}: no such heading"
