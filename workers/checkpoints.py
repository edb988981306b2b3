"""Checkpoints by kind: every cell of every stage that declares `provides=("checkpoint",)`.

Readers of checkpoints (mean_cache, prune) declare `dep_kinds=(CHECKPOINT,)` and list their cells
from `checkpoint_refs`, so a new checkpoint stage is its package plus one registry line. The
selection patterns (`prune.checkpoints`, `--checkpoints`) and the task patterns share `select`.
"""

from __future__ import annotations

from fnmatch import fnmatch

from .stage import CellRef, ConfigError, Upstream

CHECKPOINT = "checkpoint"


def select(
    patterns: list[str], names: list[str], what: str, hint: str, named_only: set[str] | None = None
) -> list[str]:
    """The names `patterns` select, in pattern order; "all" selects every name but those of the
    `named_only` stages ("stage/cell" names)."""
    named_only = named_only or set()
    chosen: list[str] = []
    for pattern in patterns:
        if pattern == "all":
            chosen.extend(n for n in names if n.split("/")[0] not in named_only and n not in chosen)
            continue
        matches = [n for n in names if fnmatch(n, pattern) or n.split("/")[0] == pattern]
        if not matches:
            raise ConfigError(f"{what} {pattern!r} matches nothing; {hint}: {', '.join(names) or '(none)'}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def checkpoint_refs(upstream: Upstream) -> list[CellRef]:
    """Every checkpoint listed so far, in stage (dependency) order."""
    return [cell.ref for cell in upstream.of_kind(CHECKPOINT)]


def selected_checkpoints(patterns: list[str], upstream: Upstream) -> list[CellRef]:
    """The checkpoints `patterns` select ("all", stage names, globs over "stage/cell")."""
    refs = {str(ref): ref for ref in checkpoint_refs(upstream)}
    hint = "the checkpoints of this config and store are (`sparsepipe import` adds imported/NAME)"
    return [refs[name] for name in select(patterns, list(refs), CHECKPOINT, hint, upstream.named_only())]
