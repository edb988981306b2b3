"""Committed artifacts by kind, for tools that read them (`sparsepipe tasks check|eval`).

A stage declares the kinds of artifact it provides (`Stage.provides`: "tokenizer",
"checkpoint"). `committed` plans the stages that provide a kind under the
current config and store, and returns the cells whose artifact is committed,
fetched to local folders; a selected cell that is not committed is an error
that says which command builds it.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

from .config import PipelineConfig
from .dag import DAMAGED, HIT, Planner, Registry
from .store import Store


class ArtifactNotFound(LookupError):
    """No committed artifact of the kind asked for (or the one named is not committed)."""


def providers(registry: Registry, kind: str) -> list[str]:
    return [name for name in registry.order if kind in registry[name].provides]


def _matches(registry: Registry, pattern: str, label: str) -> bool:
    """As prune.checkpoints selects: `all` leaves out the stages that must be named (`Stage.named_only`)."""
    stage = label.split("/")[0]
    if pattern == "all":
        return not registry[stage].named_only
    return pattern in (label, stage) or fnmatch(label, pattern)


def committed(
    registry: Registry, store: Store, config: PipelineConfig, kind: str, patterns: list[str] | None = None
) -> list[tuple[str, Path]]:
    """(cell label, local folder) of each committed artifact of `kind` selected by `patterns` (None: all)."""
    stages = providers(registry, kind)
    if not stages:
        raise ArtifactNotFound(f"no stage provides a {kind}")
    plans = [p for p in Planner(registry, store).plan(config, stages) if p.cell.stage in stages]
    labels = [str(p.cell.ref) for p in plans]
    patterns = patterns or ["all"]
    for pattern in patterns:
        if not any(_matches(registry, pattern, label) for label in labels):
            raise ArtifactNotFound(
                f"{kind} {pattern!r} matches nothing; this config has: {', '.join(labels) or '(none)'}"
            )
    chosen = [p for p in plans if any(_matches(registry, pattern, str(p.cell.ref)) for pattern in patterns)]
    missing = [p for p in chosen if p.status != HIT or p.manifest is None]
    if missing:
        names = ", ".join(str(p.cell.ref) + (" (damaged)" if p.status == DAMAGED else "") for p in missing)
        build = " ".join(sorted({p.cell.stage for p in missing}, key=registry.order.index))
        raise ArtifactNotFound(
            f"{kind} {names} is not committed in {config.store} for this config; build it with "
            f"`sparsepipe run {build.split()[-1]}` (same --preset/--config/--set/--store), or pass a path"
        )
    return [(str(p.cell.ref), store.materialize(p.manifest)) for p in chosen]
