"""docs/derivatives.md is generated from the ops' docstrings and must not drift from them."""
from __future__ import annotations

import inspect

import pytest

import autograd
from autograd import derivatives
from autograd.tensor import Tensor


def test_the_committed_table_is_exactly_what_the_generator_writes():
    committed = derivatives.DOC_PATH.read_text()
    assert committed == derivatives.render(), (
        "docs/derivatives.md is out of date: run `python -m autograd.derivatives` and commit it")


def test_every_op_states_its_derivative():
    ops = derivatives.collect()
    missing = [f"{op.module}.{op.name}: {op.doc!r}" for op in ops if not derivatives.has_derivative(op)]
    assert not missing, "first docstring paragraph states no derivative:\n" + "\n".join(missing)


def test_every_public_op_is_in_the_table():
    """Independently of the generator's own rules: every Tensor method or operator implemented in
    autograd.ops, every autograd.<op> and every F.<name> appears."""
    listed = {(op.module, op.name) for op in derivatives.collect()}
    expected = set()
    for attr in vars(Tensor).values():
        if inspect.isfunction(attr) and attr.__module__.startswith("autograd.ops."):
            expected.add((attr.__module__, attr.__name__))
    for name in ("concatenate", "stack"):
        fn = getattr(autograd, name)
        expected.add((fn.__module__, fn.__name__))
    F = pytest.importorskip("autograd.functional")
    for name in F.__all__:
        fn = getattr(F, name)
        expected.add((fn.__module__, fn.__name__))
    assert len(expected) > 45
    assert expected <= listed, f"missing from the table: {sorted(expected - listed)}"
    assert {("autograd.tensor", "to"), ("autograd.tensor", "astype")} <= listed


def test_array_helpers_and_compositions_are_not_listed_as_ops():
    names = {op.name for op in derivatives.collect()}
    assert "unbroadcast" not in names  # an array helper
    if "scaled_dot_product_attention" in names:
        assert "scaled_dot_product_attention_reference" not in names  # composed of public ops


@pytest.mark.parametrize("doc, found", [
    ("y = tanh(x).     dy/dx = 1 - y^2.", True),
    ("a + b.    d/da = 1,  d/db = 1.", True),
    ("y = x W^T + b.    dL/dx = g W", True),
    ("erf(a) elementwise.    d erf/da = (2/sqrt(pi)) exp(-a^2).", True),
    ("y = gamma x_hat + beta.    dx = r (dxhat - mean(dxhat))", True),
    ("Insert an axis of size 1 at dim.", False),
    ("Drop axes of size 1 (only dim if given).", False),
])
def test_the_derivative_detector(doc, found):
    op = derivatives.Op("op", "m", (), doc, 0)
    assert derivatives.has_derivative(op) is found


def test_check_mode_flags_a_stale_file(tmp_path):
    path = tmp_path / "derivatives.md"
    assert derivatives.main(["--output", str(path)]) == 0
    assert derivatives.main(["--check", "--output", str(path)]) == 0
    path.write_text(path.read_text().replace("dy/dx = cos(x)", "dy/dx = -cos(x)"))
    assert derivatives.main(["--check", "--output", str(path)]) == 1


def test_table_cells_escape_pipes():
    row = next(line for line in derivatives.render().splitlines() if line.startswith("| `abs` |"))
    assert "\\|x\\|" in row and row.count(" | ") == 3
