"""Show the graph behind a tensor: as an indented tree of text, or drawn with matplotlib.

Each node shows the op that made it (``param`` for a leaf that requires grad, ``const`` for
one that does not), its shape and dtype, and, once ``backward(retain_graph=True)`` has run,
the norm of the gradient dL/dnode that flowed through it in that call. A node used by several
ops (a shared input, a skip connection) is shown once, numbered, and referred to by number
afterwards, so the text stays linear in the size of the graph.

    >>> x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    >>> y = (x * x).sum()
    >>> y.backward(retain_graph=True)
    >>> print(y.graph())
    sum () float32  |grad|=1
    └─ mul (2,) float32  |grad|=1.414
       ├─ #1 param 'x' (2,) float32  |grad|=4.472
       └─ #1 (shown above)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Tensor's graph()/draw_graph() call this module: annotations only
    from autograd.tensor import Tensor

# Deeper than this, indentation stops growing and the depth is printed instead: a UNet's
# graph is thousands of nodes deep, and its text must stay linear in the number of nodes.
MAX_INDENT = 24


def _kind(node: Tensor) -> str:
    if node._op != "leaf":
        return node._op
    return "param" if node.requires_grad else "const"


def _label(node: Tensor) -> str:
    """op 'name' shape dtype  |grad|=norm"""
    name = f" '{node.name}'" if node.name else ""
    grad = f"  |grad|={node._grad_norm:.4g}" if node._grad_norm is not None else ""
    return f"{_kind(node)}{name} {tuple(node.shape)} {node.dtype}{grad}"


def _uses(root: Tensor) -> dict[int, int]:
    """How many times each node is an input of another node in the graph (by id)."""
    uses: dict[int, int] = {}
    seen = {id(root)}
    stack = [root]
    while stack:
        node = stack.pop()
        for p in node._parents:
            uses[id(p)] = uses.get(id(p), 0) + 1
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return uses


def format_graph(root: Tensor) -> str:
    """The graph as a tree of text: the root first, each op's inputs indented below it."""
    uses = _uses(root)
    numbers: dict[int, int] = {}  # shared nodes, numbered in order of first appearance
    lines = [_label(root)]
    # (node, prefix for its own line, prefix for its children's lines, depth)
    stack: list[tuple[Tensor, str, str, int]] = []

    def push_inputs(node: Tensor, prefix: str, depth: int) -> None:
        if depth > MAX_INDENT:
            prefix = f"{'   ' * MAX_INDENT}[depth {depth}] "
        last = len(node._parents) - 1
        for i, p in reversed(list(enumerate(node._parents))):
            stack.append((p, prefix + ("└─ " if i == last else "├─ "),
                          prefix + ("   " if i == last else "│  "), depth))

    push_inputs(root, "", 1)
    while stack:
        node, head, prefix, depth = stack.pop()
        key = id(node)
        if key in numbers:
            lines.append(f"{head}#{numbers[key]} (shown above)")
            continue
        tag = ""
        if uses.get(key, 0) > 1:
            numbers[key] = len(numbers) + 1
            tag = f"#{numbers[key]} "
        lines.append(f"{head}{tag}{_label(node)}")
        push_inputs(node, prefix, depth + 1)
    if not root._parents and root._op != "leaf":
        lines.append("  (the graph was freed by backward(); call backward(retain_graph=True) to keep it)")
    return "\n".join(lines)


def _nodes_inputs_first(root: Tensor) -> list[Tensor]:
    """Every node of the graph once, each after all of its inputs (iteratively)."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(node._parents) if id(p) not in seen)
    return order


def draw_graph(root: Tensor, path: str | None = None, ax: Any = None, max_nodes: int = 150) -> Any:
    """Draw the graph left to right: inputs in the first column, each op one column right of its
    deepest input, the root last. Saves a PNG (or any format matplotlib knows from the suffix) to
    ``path`` if given and returns the matplotlib Figure. Uses no pyplot state."""
    from matplotlib.figure import Figure

    nodes = _nodes_inputs_first(root)
    if len(nodes) > max_nodes:
        raise ValueError(f"draw_graph: the graph has {len(nodes)} nodes, more than max_nodes={max_nodes} "
                         f"can show legibly; print tensor.graph() instead, or pass a larger max_nodes")
    column: dict[int, int] = {}
    for node in nodes:
        column[id(node)] = 1 + max((column[id(p)] for p in node._parents), default=-1)
    # A leaf (weight, constant) sits just left of the first op that reads it, not in column 0,
    # so its arrow is short.
    first_reader: dict[int, int] = {}
    for node in nodes:
        for p in node._parents:
            if not p._parents:
                first_reader[id(p)] = min(first_reader.get(id(p), column[id(node)]), column[id(node)])
    for key, c in first_reader.items():
        column[key] = c - 1
    ncols = max(column.values()) + 1
    per_column: list[list[Tensor]] = [[] for _ in range(ncols)]
    for node in nodes:
        per_column[column[id(node)]].append(node)
    nrows = max(len(c) for c in per_column)

    if ax is None:
        fig = Figure(figsize=(min(2.3 * ncols + 0.4, 60), min(0.85 * nrows + 0.6, 60)))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    boxes = {}
    for c, members in enumerate(per_column):
        for r, node in enumerate(members):  # centre each column vertically
            y = (len(members) - 1) / 2 - r
            label = f"{_kind(node)}" + (f" '{node.name}'" if node.name else "")
            label += f"\n{tuple(node.shape)} {node.dtype}"
            if node._grad_norm is not None:
                label += f"\n|grad| {node._grad_norm:.4g}"
            colour = "#e8f0fe" if node._op != "leaf" else ("#fff1d6" if node.requires_grad else "#eeeeee")
            boxes[id(node)] = ax.text(c, y, label, ha="center", va="center", fontsize=8, family="monospace",
                                      bbox=dict(boxstyle="round,pad=0.4", fc=colour,
                                                ec="black" if node is root else "0.45",
                                                lw=1.6 if node is root else 0.8))
    for node in nodes:
        counts: dict[int, int] = {}
        for p in node._parents:
            counts[id(p)] = counts.get(id(p), 0) + 1
        for pid, n in counts.items():  # an input used twice by one op (x * x) gets one arrow, "x2"
            span = column[id(node)] - column[pid]
            # An edge that skips columns bends, so it does not run straight through the boxes between.
            bend = f"arc3,rad={0.12 + 0.04 * span:.2f}" if span > 1 else "arc3,rad=0"
            ax.annotate("", xy=(0, 0.5), xycoords=boxes[id(node)], xytext=(1, 0.5),
                        textcoords=boxes[pid],
                        arrowprops=dict(arrowstyle="-|>", color="0.4", lw=0.8, shrinkA=2, shrinkB=2,
                                        connectionstyle=bend))
            if n > 1:
                ax.annotate(f"x{n}", xy=(0, 0.5), xycoords=boxes[id(node)], xytext=(-16, 5),
                            textcoords="offset points", fontsize=7, color="0.2", ha="center")
    ax.set_xlim(-0.6, ncols - 0.4)
    ax.set_ylim(-nrows / 2, nrows / 2)
    ax.set_axis_off()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig
