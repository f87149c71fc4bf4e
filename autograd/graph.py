"""Show the graph behind a tensor: as indented text, or drawn with matplotlib.

Each line is one node: the op that made it, its shape, and, once
``backward(retain_graph=True)`` has run, the norm of the gradient that flowed through it.
A node reached twice (a tensor used by several ops) is printed once and referred to after.
"""
from __future__ import annotations

from typing import Any

from autograd.tensor import Tensor


def _label(node: Tensor) -> str:
    name = f" '{node.name}'" if node.name else ""
    grad = f"  |grad|={node._grad_norm:.4g}" if node._grad_norm is not None else ""
    kind = node._op if node._op != "leaf" else ("param" if node.requires_grad else "const")
    return f"{kind}{name} {tuple(node.shape)} {node.dtype}{grad}"


def _walk(root: Tensor) -> list[tuple[int, Tensor, int | None]]:
    """(depth, node, id of first appearance if seen before) in depth-first order, iteratively."""
    rows: list[tuple[int, Tensor, int | None]] = []
    seen: dict[int, int] = {}
    stack = [(0, root)]
    while stack:
        depth, node = stack.pop()
        key = id(node)
        if key in seen:
            rows.append((depth, node, seen[key]))
            continue
        seen[key] = len(seen)
        rows.append((depth, node, None))
        for p in reversed(node._parents):
            stack.append((depth + 1, p))
    return rows


def format_graph(root: Tensor) -> str:
    """The graph as text, root first, inputs indented below the op that used them."""
    numbers: dict[int, int] = {}
    lines = []
    for depth, node, first in _walk(root):
        if first is not None:
            lines.append(f"{'  ' * depth}└ (#{first}, shown above)")
            continue
        numbers[id(node)] = len(numbers)
        lines.append(f"{'  ' * depth}└ #{numbers[id(node)]} {_label(node)}")
    if not root._parents and root._op != "leaf":
        lines.append("  (the graph was freed by backward(); call backward(retain_graph=True) to keep it)")
    return "\n".join(lines)


def draw_graph(root: Tensor, path: str | None = None, ax: Any = None) -> Any:
    """Draw the graph as boxes in layers (inputs on the left, the root on the right)."""
    import matplotlib
    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    # Longest-path layering: a node sits one column right of its deepest input.
    nodes: dict[int, Tensor] = {}
    order = []
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in nodes:
            continue
        nodes[id(node)] = node
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if id(p) not in nodes)
    column = {}
    for node in order:
        column[id(node)] = 1 + max((column[id(p)] for p in node._parents), default=-1)
    rows: dict[int, int] = {}
    position = {}
    for node in order:
        c = column[id(node)]
        position[id(node)] = (c, rows.get(c, 0))
        rows[c] = rows.get(c, 0) + 1

    fig = None
    if ax is None:
        ncol, nrow = max(column.values()) + 1, max(rows.values())
        fig, ax = plt.subplots(figsize=(3.2 * ncol + 1, 0.9 * nrow + 1))
    else:
        fig = ax.figure
    for node in order:
        x, y = position[id(node)]
        for p in node._parents:
            px, py = position[id(p)]
            ax.annotate("", xy=(x * 3.2, -y), xytext=(px * 3.2 + 1.2, -py),
                        arrowprops=dict(arrowstyle="->", color="0.5"))
        ax.text(x * 3.2, -y, _label(node).replace(" float", "\nfloat"), fontsize=7, va="center",
                bbox=dict(boxstyle="round", fc="#e8f0fe" if node._parents else "#fff4e0", ec="0.4"))
    ax.set_axis_off()
    ax.autoscale()
    ax.margins(0.15)
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
