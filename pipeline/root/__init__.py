"""sparsepipe: weight-sparse transformers, end to end. The public Python API (README, "Python API"):

    import sparsepipe
    store = sparsepipe.open_store("./artifacts")      # or "s3://bucket/prefix"
    store.checkpoints(), store.circuits()
    model = store.load_model("pretrain/tiny")
    circuit = store.load_circuit("pretrain/tiny", "bracket_counting")
    logits = circuit.run(["x = [1, [2"])              # everything outside the circuit ablated, as pruning did

This file is the `sparsepipe` package's own __init__ (pyproject.toml maps the package `sparsepipe` to this
folder and each subpackage to its top-level folder). Every `import sparsepipe.<anything>` runs it first, the
CLI and every Ray worker included, so it imports nothing eagerly: the API loads on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline.api import CircuitRef, NotInStore, ResultStore, open_store
    from .workers.prune.runnable import Circuit

__all__ = ["Circuit", "CircuitRef", "NotInStore", "ResultStore", "open_store"]

_HOMES = {
    "open_store": "sparsepipe.pipeline.api",
    "ResultStore": "sparsepipe.pipeline.api",
    "CircuitRef": "sparsepipe.pipeline.api",
    "NotInStore": "sparsepipe.pipeline.api",
    "Circuit": "sparsepipe.workers.prune.runnable",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sparsepipe' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
