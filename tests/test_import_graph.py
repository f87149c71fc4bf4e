"""The package-internal import graph: no cycles, and module headers that show the dependencies.

The graph is read from the source (``ast``, every ``import`` anywhere in a module, function-local
ones included), not from ``sys.modules``, so a cycle that only closes when some function runs is
found too. An edge goes from a module to every first-party module an import statement runs:
the target, and the target's enclosing packages (their ``__init__`` runs first) except the
importing module's own packages, which are already being imported when it runs. Imports under
``if TYPE_CHECKING:`` never run and are left out.

Allowed: one cycle in ``autograd/``, Tensor's operator methods (``autograd.tensor_methods``
attaches +, @, sum, ... to Tensor) and the ops that implement them, which build Tensors. (Today
``autograd.tensor`` imports ``tensor_methods`` for type checking only, so even that loop is
open.) Any other strongly connected component of the graph fails the test, named module by
module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("autograd", "tinydiff")

# autograd.tensor_methods imports the op modules, whose ops build Tensors (autograd.tensor), and
# Tensor's own methods call those ops: the one cycle issue 10 keeps, by design.
ALLOWED_CYCLE_MODULES = frozenset({"autograd.tensor", "autograd.tensor_methods"})
ALLOWED_CYCLE_PREFIX = "autograd.ops"

# Non-first-party imports that may stay inside a function without a comment: optional or heavy
# dependencies a user may not have (or that slow down `tinydiff --help`).
OPTIONAL = ("cupy", "tqdm", "matplotlib", "mpi4py", "scipy", "torch", "PIL")


def module_files() -> dict[str, Path]:
    """Every module of the first-party packages: dotted name -> file."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class ImportRecord:
    """One import statement: where it is, what it names, whether it is inside a function."""

    def __init__(self, node: ast.Import | ast.ImportFrom, targets: list[str], local: bool) -> None:
        self.node, self.targets, self.local = node, targets, local
        self.line = node.lineno


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[ImportRecord]:
    """The import statements of one module, resolved to dotted names (first-party or not)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    records: list[ImportRecord] = []

    def resolve(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            here = name.split(".") if is_package else name.split(".")[:-1]
            here = here[:len(here) - (node.level - 1)]
            base = ".".join(here + ([base] if base else []))
        # `from pkg import sub` imports the submodule pkg.sub when there is one.
        subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
        return [base] + subs

    def visit(node: ast.AST, local: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, local)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            records.append(ImportRecord(node, resolve(node), local))
            return
        inner = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return records


def import_graph() -> dict[str, set[str]]:
    """Module -> the first-party modules its imports run (see the module docstring)."""
    modules = module_files()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        own_packages = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
        for record in imports_of(name, path, modules):
            for target in record.targets:
                parts = target.split(".")
                for k in range(1, len(parts) + 1):
                    step = ".".join(parts[:k])
                    if step in modules and step not in own_packages and step != name:
                        graph[name].add(step)
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest closed path through the component's first module, for the error message."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    nxt.append(child)
        frontier = nxt
    return component


def is_allowed(component: list[str]) -> bool:
    """The operator-method cycle: Tensor, its methods module, and op modules only."""
    return (ALLOWED_CYCLE_MODULES <= set(component)
            and all(m in ALLOWED_CYCLE_MODULES or m == ALLOWED_CYCLE_PREFIX
                    or m.startswith(ALLOWED_CYCLE_PREFIX + ".") for m in component))


def forbidden_cycles(graph: dict[str, set[str]]) -> list[str]:
    return [" -> ".join(one_cycle(graph, c)) + f"  (component: {', '.join(c)})"
            for c in strongly_connected_components(graph) if not is_allowed(c)]


# --------------------------------------------------------------------------- the checks

def test_the_graph_sees_the_known_edges():
    # Guards the parser: if it stopped resolving imports, "no cycles" would hold trivially.
    graph = import_graph()
    assert "tinydiff.run" in graph["tinydiff.train"]
    assert "tinydiff.data.batches" in graph["tinydiff.train"]
    assert "autograd.tensor" in graph["autograd.tensor_methods"]
    assert "autograd.ops.arithmetic" in graph["autograd.tensor_methods"]
    assert "tinydiff.models" in graph["tinydiff.run"]          # a package import counts its __init__
    assert "tinydiff.data" in graph["tinydiff.run"]            # the parent of tinydiff.data.toy2d


def test_no_import_cycle_but_the_operator_methods():
    cycles = forbidden_cycles(import_graph())
    assert not cycles, "import cycles in the package:\n  " + "\n  ".join(cycles)


def test_the_cycle_finder_names_a_planted_cycle():
    graph = {m: set(e) for m, e in import_graph().items()}
    assert not forbidden_cycles(graph)
    graph["tinydiff.run"].add("tinydiff.train")                # train imports run: a loop
    (found,) = forbidden_cycles(graph)
    assert "tinydiff.run -> tinydiff.train" in found                # named, edge by edge
    graph = {m: set(e) for m, e in import_graph().items()}
    graph["autograd.ops.arithmetic"].add("autograd.functional")   # beyond the allowed cycle
    assert forbidden_cycles(graph)


@pytest.mark.parametrize("package", PACKAGES)
def test_function_local_first_party_imports_say_why(package):
    """A package-internal import inside a function hides a dependency from the module header;
    it stays only with a comment on its line (or the line before) saying why."""
    modules = module_files()
    silent = []
    for name, path in modules.items():
        if not name.startswith(package):
            continue
        lines = path.read_text().splitlines()
        for record in imports_of(name, path, modules):
            first_party = any(t.split(".")[0] in PACKAGES for t in record.targets)
            if not record.local or not first_party:
                continue
            end = record.node.end_lineno or record.line
            span = lines[record.line - 2:end] if record.line >= 2 else lines[:end]
            if not any("#" in text for text in span):
                silent.append(f"{path.relative_to(ROOT)}:{record.line}: {lines[record.line - 1].strip()}")
    assert not silent, ("function-local imports of the package's own modules without a comment "
                        "saying why (hoist them to the module header, or say why not):\n  "
                        + "\n  ".join(silent))
