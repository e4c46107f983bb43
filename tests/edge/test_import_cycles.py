"""No module of a service imports a module that imports it back (directly or through others)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("glitchflow_core", "databuffer", "datastore_logic", "glitchflow_api")


def module_imports(package: str) -> dict[str, set[str]]:
    """For each module of ``package``, the modules of the same package it imports anywhere.

    Imports inside functions count too: a cycle made lazy is still a cycle.
    """
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).glob("*.py")):
        name = f"{package}.{path.stem}" if path.stem != "__init__" else package
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m.startswith(package + ".") and m != name}
    return graph


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package: str) -> None:
    graph = module_imports(package)
    assert graph, f"no modules found in {package}"
    cycles = [c for m in graph if (c := cycle_through(graph, m))]
    assert cycles == []


def test_api_app_and_routes_do_not_import_each_other() -> None:
    graph = module_imports("glitchflow_api")
    assert "glitchflow_api.app" not in graph["glitchflow_api.routes"]
    assert "glitchflow_api.context" in graph["glitchflow_api.routes"]
