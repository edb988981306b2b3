"""The code a cell runs, found by reading imports, and its fingerprint.

A stage's `run` names a module; everything that module imports from this
project, directly or through other project modules, runs when a cell runs.
`import_closure` finds those modules by parsing source (the AST, so nothing is
imported and imports inside functions count too), and `code_fingerprint`
hashes their bytes.  A change to any module in the closure gives a new key; a
change anywhere else does not.

Modules are found on disk from the project's top-level packages
(`sparsepipe.pipeline`, `sparsepipe.workers`, ...), whether installed editable
or not; `roots` points them somewhere else (tests use a copy of the sources).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

PROJECT = "sparsepipe"


@lru_cache(maxsize=None)
def _package_dir(top: str) -> Path | None:
    spec = importlib.util.find_spec(f"{PROJECT}.{top}")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def module_file(name: str, roots: dict[str, Path] | None = None) -> Path | None:
    """The source file of project module `name` ("sparsepipe.workers.nn.gpt"), or None if there is none."""
    parts = name.split(".")
    if parts[0] != PROJECT or len(parts) < 2:
        return None
    base = roots.get(parts[1]) if roots is not None else _package_dir(parts[1])
    if base is None:
        return None
    folder = base.joinpath(*parts[2:])
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    single = folder.with_suffix(".py")
    return single if parts[2:] and single.is_file() else None


def _outside_module_file(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imported_names(module: str, path: Path) -> set[str]:
    """Every module name an import statement in `path` may load, resolved to absolute names."""
    package = module if _is_package(path) else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # `from package import name`: the name may be a submodule.
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(min(2, len(parts)), len(parts) + 1)]


def import_closure(module: str, roots: dict[str, Path] | None = None) -> dict[str, Path]:
    """Every project module that importing `module` may load, by name, with its source file."""
    found: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        for candidate in _with_parents(name):
            if candidate in found:
                continue
            path = module_file(candidate, roots)
            if path is None and candidate == module:
                path = _outside_module_file(module)  # a run function outside the project (tests)
            if path is None:
                continue
            found[candidate] = path
            pending.extend(_imported_names(candidate, path))
    if module not in found:
        raise ValueError(f"cannot fingerprint module {module!r}: no source file for it in this project")
    return dict(sorted(found.items()))


def code_fingerprint(module: str, roots: dict[str, Path] | None = None) -> str:
    """sha256 over the names and bytes of every module in `module`'s import closure."""
    if roots is None:
        return _cached_fingerprint(module)
    return _fingerprint(import_closure(module, roots))


@lru_cache(maxsize=None)
def _cached_fingerprint(module: str) -> str:
    return _fingerprint(import_closure(module))


def clear_cache() -> None:
    """Forget fingerprints computed so far (for code that edits sources while running, i.e. tests)."""
    _cached_fingerprint.cache_clear()


def _fingerprint(closure: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name, path in closure.items():
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
