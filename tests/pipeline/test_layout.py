"""The layout's rules, checked on the import graph: no import cycles; workers, tasks and kernels never
import the controller."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "workers", "kernels", "tasks")


def _package(module: str) -> str:
    """The unit a module belongs to: a package of workers/ ("sparsepipe.workers.prune") or one of its shared
    modules ("sparsepipe.workers.stage", "sparsepipe.workers.registry"), else its top-level package
    ("sparsepipe.pipeline")."""
    parts = module.split(".")
    return ".".join(parts[:3] if parts[1] == "workers" and len(parts) > 2 else parts[:2])


def test_no_two_stage_packages_import_each_other():
    """Stages meet through shared modules (workers/stage.py, checkpoints.py, nn/) and artifacts, never in a
    cycle: a cycle puts each package's code in the other's cache key."""
    packages: dict[str, set[str]] = {}
    for module, imported in _graph().items():
        edges = packages.setdefault(_package(module), set())
        edges.update(_package(n) for n in imported if _package(n) != _package(module))
    assert _cycles(packages) == []


def test_no_private_name_is_imported_across_packages():
    """`_name` is a package's own business; what another package needs is public (train's model shapes, its
    training entry, the shard loader)."""
    crossings = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        if relative.parts[0] not in PACKAGES:
            continue
        name = ".".join(("sparsepipe", *relative.parts)).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_bytes())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package.split(".")
            source = ".".join(base[: len(base) - node.level + 1] + [node.module or ""]) if node.level else node.module
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private and source and _package(source.rstrip(".")) != _package(name):
                crossings.append(f"{name} imports {', '.join(private)} from {source}")
    assert crossings == []
