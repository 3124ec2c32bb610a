"""The package's import graph: no cycles and no private names across modules.

Every ``import`` in ``src/runtrack`` counts, at module level, inside functions
and under ``TYPE_CHECKING``: a cycle that only type checkers see still ties two
modules together, and a name with a leading underscore is not a contract.
"""

from __future__ import annotations

import ast
from pathlib import Path

import runtrack

ROOT = Path(runtrack.__file__).parent
PACKAGE = "runtrack"


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (``runtrack.store.sql``)."""
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = module_names()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for each import in a module."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            found += [(source, alias.name, node.lineno) for alias in node.names]
    return [entry for entry in found if entry[0].split(".")[0] == PACKAGE]


def target(source: str, name: str | None) -> str:
    """The runtrack module an import depends on: a submodule if it names one."""
    if name is not None and f"{source}.{name}" in MODULES:
        return f"{source}.{name}"
    while source not in MODULES:
        source = source.rsplit(".", 1)[0]
    return source


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for module in MODULES:
        for source, name, _ in imports(module):
            dependency = target(source, name)
            # Importing a submodule runs its packages' __init__ first, but a
            # package re-exporting its own parts is not a cycle of concepts.
            if dependency != module and not module.startswith(f"{dependency}."):
                edges[module].add(dependency)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_walker_sees_every_kind_of_import() -> None:
    # ledger.py imports lineage inside a function; the walker must count it.
    assert "runtrack.lineage" in graph()["runtrack.ledger"]
    assert len(MODULES) > 50


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{MODULES[module].relative_to(ROOT.parent)}:{line} imports {name} from {source}"
        for module in MODULES
        for source, name, line in imports(module)
        if name is not None
        and name.startswith("_")
        and not name.startswith("__")
        and f"{source}.{name}" not in MODULES
    ]
    assert private == []
