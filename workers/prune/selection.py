"""Which checkpoints the prune settings select (`prune.checkpoints`), and the pattern matching shared with
`prune.tasks`."""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Any

from ..stage import Cell, CellRef, ConfigError

CHECKPOINT_STAGES = ("pretrain", "dense", "bridges", "imported", "random_init")  # each a dep of mean_cache and prune
# A control checkpoint's cell records the checkpoint it is the twin of (random_init: params["source"]); it is
# selected with that checkpoint.
CONTROL_SOURCE_PARAM = "source"
# Imported models read their own tokenizer's ids (`tokenize.tokenizer`), so `all` leaves them out: name them.
NAMED_ONLY_STAGES = ("imported",)


def select(patterns: list[str], names: list[str], what: str, hint: str, named_only: tuple[str, ...] = ()) -> list[str]:
    """The names `patterns` select; "all" selects every name but those of the `named_only` stages."""
    chosen = []
    for pattern in patterns:
        if pattern == "all":
            chosen.extend(n for n in names if n.split("/")[0] not in named_only and n not in chosen)
            continue
        matches = [n for n in names if fnmatch(n, pattern) or n.split("/")[0] == pattern]
        if not matches:
            raise ConfigError(f"{what} {pattern!r} matches nothing; {hint}: {', '.join(names) or '(none)'}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def selected_checkpoints(config: Any, upstream: dict[str, list[Cell]]) -> list[CellRef]:
    cells = [c for stage in CHECKPOINT_STAGES for c in upstream.get(stage, [])]
    refs = {str(c.ref): c.ref for c in cells}
    chosen = [
        refs[name]
        for name in select(
            config.prune.checkpoints,
            list(refs),
            "checkpoint",
            "the checkpoints of this config and store are (`sparsepipe import` adds imported/NAME)",
            NAMED_ONLY_STAGES,
        )
    ]
    names = {str(ref) for ref in chosen}
    controls = [c.ref for c in cells if c.params.get(CONTROL_SOURCE_PARAM) in names and str(c.ref) not in names]
    return chosen + controls
