"""The package tree reads in dependency order (issue #11), as trio's test_exports guards exports.

Every layer below may import only the layers listed above it, and no module may take part
in an import cycle. The graph is read from the source with ``ast``, so imports inside
functions (lazy) count as much as top-level ones: a lazy upward import is still a
dependency, only a hidden one. Imports under ``if TYPE_CHECKING:`` count for the layer
order (a type from a higher layer is knowledge of that layer) but not for cycles, since
they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anypool

PACKAGE = Path(anypool.__file__).parent

# Lowest first. A module's layer is its first path component under anypool/.
LAYERS = [
    "_version",
    "_errors",
    "_task",
    "_runtime",
    "abc",
    "_wire",
    "_local",
    "_scheduler",
    "_sync",
    "_backends",
    "_auto",
    "_observe",
    "_core",
    "_frontends",
    "_cli",
    "__init__",
    "__main__",
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names of the modules an ``from ... import`` statement can load."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    # ``from pkg import mod`` depends on pkg.mod; ``from mod import name`` on mod
    return [f"{target}.{alias.name}" for alias in node.names] + [target]


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return found


def import_graph(runtime_only: bool = False) -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = type_checking_nodes(tree) if runtime_only else set()
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                candidates = resolve(name, path.name == "__init__.py", node)
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found = [c for c in candidates if c in files and c != name]
            if isinstance(node, ast.ImportFrom) and len(found) > 1:
                found = found[:-1]  # submodules named: the package itself is only passed through
            deps.update(found)
        graph[name] = deps
    return graph


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_layer():
    unknown = sorted({layer_of(m) for m in import_graph()} - set(LAYERS))
    assert unknown == [], f"add these to LAYERS in dependency order: {unknown}"


def test_layers_import_only_layers_above_them():
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = [
        f"{m} -> {d}"
        for m, deps in sorted(import_graph().items())
        for d in sorted(deps)
        if rank[layer_of(d)] > rank[layer_of(m)]
    ]
    assert upward == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one module are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [c for c in found if len(c) > 1]


def test_no_import_cycles():
    assert strongly_connected(import_graph(runtime_only=True)) == []


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_cycle_finder_finds_cycles(graph, cycles):
    # the checker itself must be able to fail
    assert strongly_connected(graph) == cycles


def _design_layer_map() -> str:
    """The text of docs/design.md's "Layer map" section (up to the next heading)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text("utf-8")
    start = text.index("### Layer map\n")
    end = text.index("\n#", start + 1)
    return text[start:end]


def test_design_layer_map_lists_every_module_in_layer_order():
    # docs/design.md's layer map is written by hand: a new module must be added to it, a
    # removed one taken out, and the rows must follow LAYERS (lowest first)
    import re

    # the module column of the table rows
    listed = re.findall(r"^\|[^|\n]*\| `([\w/]+\.py)` \|", _design_layer_map(), re.MULTILINE)
    modules = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
    assert sorted(set(modules) - set(listed)) == [], "add these to docs/design.md's layer map"
    assert sorted(set(listed) - set(modules)) == [], "no such module: remove from the layer map"
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    ranks = [rank[Path(m).parts[0].removesuffix(".py")] for m in listed]
    assert ranks == sorted(ranks), "the layer map's rows must follow LAYERS, lowest first"
