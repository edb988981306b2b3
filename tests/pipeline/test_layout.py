"""The layout's rules, checked on the import graph: no import cycles; workers, tasks and kernels never
import the controller."""

from __future__ import annotations

import sys

from sparsepipe.pipeline.fingerprint import _imported_names, import_closure


def _graph() -> dict[str, set[str]]:
    modules = {**import_closure("sparsepipe.pipeline.cli"), **import_closure("sparsepipe.workers.registry")}
    # A module importing its own package (`from . import x`) runs no new code: not an edge.
    return {
        name: {n for n in _imported_names(name, path) if n in modules and n != name and not name.startswith(n + ".")}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_anywhere():
    """Type-checking-only imports count too (tasks once had context -> filler -> snippets -> context)."""
    assert _cycles(_graph()) == []


def test_workers_tasks_and_kernels_never_import_the_controller():
    graph = _graph()
    crossing = sorted(
        (m, n)
        for m in graph
        for n in graph[m]
        if not m.startswith("sparsepipe.pipeline") and n.startswith("sparsepipe.pipeline")
    )
    assert crossing == []
