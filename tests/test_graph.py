"""The graph view: what Tensor.graph() prints and draw_graph() draws.

The gradient norms it shows are checked against gradients derived by hand for
L = mean(h*h + h), h = tanh(x @ w), not against the engine's own bookkeeping.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from autograd import Tensor

LINE = re.compile(r"^[ │├└─]*(?:#(\d+) )?(\S+)(?: '(\w+)')? (\([\d, ]*\)) (\w+)(?:  \|grad\|=(\S+))?$")


def small_graph():
    x = Tensor(np.array([[1.0, 2.0], [3.0, -4.0], [0.5, 0.25]]), requires_grad=True, name="x")
    w = Tensor(np.array([0.5, -0.3]), requires_grad=True, name="w")
    h = (x @ w).tanh()
    loss = (h * h + h).mean()
    return x, w, h, loss


def parse(text):
    """[(op, name, shape, dtype, grad norm or None)] for each full line; count of back-references."""
    rows, refs = [], 0
    for line in text.splitlines():
        if line.endswith("(shown above)"):
            refs += 1
            continue
        m = LINE.match(line)
        assert m, f"unparsed line: {line!r}"
        _, op, name, shape, dtype, norm = m.groups()
        rows.append((op, name, shape, dtype, None if norm is None else float(norm)))
    return rows, refs


def test_graph_names_every_op_with_shape_and_dtype_and_shows_shared_nodes_once():
    _, _, _, loss = small_graph()
    rows, refs = parse(loss.graph())
    assert [(op, name, shape, dtype) for op, name, shape, dtype, _ in rows] == [
        ("mean", None, "()", "float64"),
        ("add", None, "(3,)", "float64"),
        ("mul", None, "(3,)", "float64"),
        ("tanh", None, "(3,)", "float64"),
        ("matmul", None, "(3,)", "float64"),
        ("param", "x", "(3, 2)", "float64"),
        ("param", "w", "(2,)", "float64"),
    ]
    assert refs == 2  # h feeds mul twice and add once: drawn once, referred to twice
    assert all(norm is None for *_, norm in rows)  # no backward yet
    assert "#1 tanh" in loss.graph()


def test_gradient_norms_after_retain_graph_equal_the_hand_derived_gradients():
    x, w, h, loss = small_graph()
    loss.backward(retain_graph=True)
    rows, _ = parse(loss.graph())
    norms = {op if name is None else name: norm for op, name, _, _, norm in rows}

    X, W = x.data, w.data
    n = X.shape[0]
    z = X @ W
    H = np.tanh(z)
    d_sum = np.full(n, 1.0 / n)            # d mean / d (h*h + h)
    d_h = d_sum * (2 * H + 1)              # through h*h (twice) and h
    d_z = d_h * (1 - H ** 2)               # tanh' = 1 - tanh^2
    d_x = np.outer(d_z, W)                 # z = X w
    d_w = X.T @ d_z
    expected = {"mean": 1.0, "add": np.linalg.norm(d_sum), "mul": np.linalg.norm(d_sum),
                "tanh": np.linalg.norm(d_h), "matmul": np.linalg.norm(d_z),
                "x": np.linalg.norm(d_x), "w": np.linalg.norm(d_w)}
    for key, value in expected.items():
        assert norms[key] == pytest.approx(value, rel=1e-3), key
    np.testing.assert_allclose(x.grad, d_x, rtol=1e-12)  # and the leaves got the same gradient
    np.testing.assert_allclose(w.grad, d_w, rtol=1e-12)


def test_constants_are_marked_and_get_no_gradient_norm():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x * Tensor(np.array([2.0, 3.0]), name="scale")).sum()
    y.backward(retain_graph=True)
    rows, _ = parse(y.graph())
    const = [r for r in rows if r[0] == "const"]
    assert const == [("const", "scale", "(2,)", "float64", None)]


def test_a_freed_graph_says_so_and_a_leaf_is_one_line():
    _, _, _, loss = small_graph()
    loss.backward()
    assert "freed by backward()" in loss.graph()
    assert Tensor([1.0, 2.0], requires_grad=True, name="a").graph() == "param 'a' (2,) float32"


def test_deep_graph_text_stays_linear_in_size():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y.tanh()
    text = y.graph()
    assert len(text.splitlines()) == 3001
    assert len(text) < 3001 * 120  # indentation stops growing past a fixed depth
    assert "[depth 3000]" in text


def test_draw_graph_writes_a_readable_png(tmp_path):
    _, _, _, loss = small_graph()
    loss.backward(retain_graph=True)
    path = tmp_path / "graph.png"
    fig = loss.draw_graph(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = fig.get_size_inches() * 110
    assert 300 < width < 3000 and 100 < height < 2000
    labels = [t.get_text() for t in fig.axes[0].texts if t.get_bbox_patch() is not None]
    assert len(labels) == 7  # one box per node: the shared tanh once
    assert "x2" in [t.get_text() for t in fig.axes[0].texts]  # h * h: one arrow, marked x2
    for op in ("matmul", "tanh", "mul", "add", "mean", "param 'x'", "param 'w'"):
        assert sum(label.startswith(op) for label in labels) == 1, op
    assert any("|grad| 1" in label for label in labels)


def test_draw_graph_refuses_graphs_too_large_to_read():
    y = Tensor(np.ones(2), requires_grad=True)
    for _ in range(200):
        y = y * 1.0
    with pytest.raises(ValueError, match="draw_graph: the graph has 401 nodes.*graph\\(\\)"):
        y.draw_graph()
