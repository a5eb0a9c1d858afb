"""The package's shape: one room per part, data flowing one way, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "engramdb"

ROOMS_BELOW = {
    # room: rooms (or top-level modules) it must never import
    "store": {"engine", "index", "consolidation", "snapshots", "cli", "server", "hyperbolic"},
    "index": {"engine", "store", "consolidation", "snapshots", "cli", "server"},
    "hyperbolic": {"engine", "store", "index", "consolidation", "snapshots", "cli", "server"},
    "embeddings": {"engine", "store", "index", "consolidation", "snapshots", "cli", "server"},
    "consolidation": {"engine", "snapshots", "cli", "server"},
    "snapshots": {"engine", "consolidation", "cli", "server"},
    "engine": {"cli", "server"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every module an import anywhere in the file needs (lazy imports included).

    ``from pkg import sub`` needs ``pkg.sub`` when that is a module, else ``pkg``.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for imported in _imports(path, set(mods)):
            if imported.split(".")[0] != "engramdb":
                continue
            while imported not in mods:
                imported = imported.rsplit(".", 1)[0]
            if imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.parametrize("room", sorted(ROOMS_BELOW))
def test_data_flows_one_way(room: str) -> None:
    graph = _graph()
    for module, targets in graph.items():
        if _room(module) != room:
            continue
        bad = sorted(t for t in targets if _room(t) in ROOMS_BELOW[room] or t == "engramdb")
        assert not bad, f"{module} imports {bad}, which sit above the {room} room"


def test_only_the_store_calls_lancedb() -> None:
    for name, path in _modules().items():
        uses = {m for m in _imports(path, set()) if m.split(".")[0] in ("lancedb", "lance")}
        if uses:
            assert _room(name) == "store", f"{name} imports {sorted(uses)}; only store/ may"
