"""The import layers hold: no upward import and no import cycle anywhere in omnisdk.

The layers and the (empty) lists of allowed exceptions are read from the import-linter contracts in
pyproject.toml (one source, also checked by `lint-imports` in CI's lint session). The graph counts
every import: module level, inside functions (lazy) and under `TYPE_CHECKING`.
"""

from __future__ import annotations

import tomllib
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
Edge = tuple[str, str]


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _edges(expressions: Iterable[str]) -> set[Edge]:
    edges = set()
    for expression in expressions:
        importer, imported = (part.strip() for part in expression.split("->"))
        assert "*" not in expression, f"name the edge, no wildcards: {expression}"
        edges.add((importer, imported))
    return edges


CONTRACTS = _contracts()
#: Highest layer first; each layer: its modules, and whether they must not import each other.
LAYERS: list[tuple[list[str], bool]] = [
    ([m.strip() for m in layer.replace("|", ":").split(":")], "|" in layer)
    for layer in CONTRACTS["layers"]["layers"]  # type: ignore[attr-defined]
]
KNOWN_UPWARD = _edges(CONTRACTS["layers"].get("ignore_imports", ()))  # type: ignore[arg-type]
KNOWN_CYCLE_EDGES = _edges(CONTRACTS["acyclic"].get("ignore_imports", ()))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("omnisdk", include_external_packages=False, exclude_type_checking_imports=False)


def _layer_of(module: str) -> tuple[int, str] | None:
    """(rank, the layer entry it belongs to), rank 0 being the lowest; None for an unplaced module."""
    for i, (names, _) in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                return len(LAYERS) - 1 - i, name
    return None


def _where(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return "; ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details) or "?"


def _chain(graph: grimp.ImportGraph, edges: list[Edge]) -> str:
    return "\n".join(f"  {a} -> {b}  ({_where(graph, a, b)})" for a, b in edges)


def _imports(graph: grimp.ImportGraph, module: str, skip: set[Edge]) -> list[str]:
    return sorted(w for w in graph.find_modules_directly_imported_by(module) if (module, w) not in skip)


def _strongly_connected(graph: grimp.ImportGraph, skip: set[Edge]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(_imports(graph, start, skip)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(_imports(graph, child, skip))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in _imports(graph, node, skip):
                    found.append(sorted(component))
    return found


def _cycle_in(graph: grimp.ImportGraph, component: list[str], skip: set[Edge]) -> list[Edge]:
    """One shortest cycle through the component's first module, as its edges."""
    members, start = set(component), component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in _imports(graph, node, skip):
            if child not in members:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                path.reverse()
                return list(zip(path, [*path[1:], start], strict=True))
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle found in {component}")


def test_every_module_has_a_layer(graph: grimp.ImportGraph) -> None:
    unplaced = sorted(m for m in graph.modules if m != "omnisdk" and _layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to [tool.importlinter] layers in pyproject.toml): {unplaced}"


def test_nothing_imports_the_top_level_package(graph: grimp.ImportGraph) -> None:
    """`omnisdk/__init__.py` re-exports the facade, so importing it from inside is importing upwards."""
    importers = sorted(graph.find_modules_that_directly_import("omnisdk"))
    assert not importers, "import from the defining module instead:\n" + _chain(
        graph, [(m, "omnisdk") for m in importers]
    )


def test_no_upward_import(graph: grimp.ImportGraph) -> None:
    independent = {name for names, alone in LAYERS if alone for name in names}
    offending: list[Edge] = []
    for importer in sorted(graph.modules):
        mine = _layer_of(importer)
        if mine is None:
            continue
        for imported in _imports(graph, importer, KNOWN_UPWARD):
            theirs = _layer_of(imported)
            if theirs is None:
                continue
            upward = theirs[0] > mine[0]
            sibling = theirs[0] == mine[0] and theirs[1] != mine[1] and mine[1] in independent
            if upward or sibling:
                offending.append((importer, imported))
    assert not offending, "imports of a higher (or an independent sibling) layer:\n" + _chain(graph, offending)


def test_no_import_cycle(graph: grimp.ImportGraph) -> None:
    skip = KNOWN_UPWARD | KNOWN_CYCLE_EDGES
    cycles = [_cycle_in(graph, component, skip) for component in _strongly_connected(graph, skip)]
    assert not cycles, "import cycles:\n" + "\n\n".join(_chain(graph, cycle) for cycle in cycles)


def test_the_known_violations_still_exist(graph: grimp.ImportGraph) -> None:
    """An allowed exception whose import is gone must be deleted from pyproject.toml: the lists only shrink."""
    known = KNOWN_UPWARD | KNOWN_CYCLE_EDGES
    stale = sorted((a, b) for a, b in known if not graph.direct_import_exists(importer=a, imported=b))
    assert not stale, "fixed, so delete these from the ignore_imports lists in pyproject.toml: " + ", ".join(
        f"{a} -> {b}" for a, b in stale
    )


def test_the_checks_see_lazy_and_type_checking_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cycle closed only by an import inside a function or under TYPE_CHECKING, through a package's
    `__init__`, is found; without those imports there is none."""
    package = tmp_path / "cyclepkg"
    package.mkdir()
    (package / "__init__.py").write_text("from ._a import A\n")
    (package / "_a.py").write_text("from ._b import B\nA = 1\n")
    (package / "_b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import A\nB = 2\n"
        "def f():\n    from ._c import C\n    return C\n"
    )
    (package / "_c.py").write_text("from ._a import A\nC = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    g = grimp.build_graph("cyclepkg", include_external_packages=False, exclude_type_checking_imports=False)
    assert _strongly_connected(g, set()) == [["cyclepkg", "cyclepkg._a", "cyclepkg._b", "cyclepkg._c"]]
    assert _cycle_in(g, ["cyclepkg", "cyclepkg._a", "cyclepkg._b"], set()) == [
        ("cyclepkg", "cyclepkg._a"), ("cyclepkg._a", "cyclepkg._b"), ("cyclepkg._b", "cyclepkg"),
    ]
    assert _strongly_connected(g, {("cyclepkg._b", "cyclepkg"), ("cyclepkg._b", "cyclepkg._c")}) == []
