"""Which control a prune cell is, recorded in its result.json so that the report needs no naming rules.

    random_init/<checkpoint>:<task>   {"kind": "random_init", "checkpoint": <checkpoint>, "task": <task>}
    <checkpoint>:<task>__flipped      {"kind": "flipped", "checkpoint": <checkpoint>, "task": <task>}
    <checkpoint>:<task>__shuffled     {"kind": "shuffled", "checkpoint": <checkpoint>, "task": <task>}

"checkpoint" and "task" name the circuit the control stands beside; a cell that is no control records None.
"""

from __future__ import annotations

from typing import Any

from ...tasks.registry import TWINS

RANDOM_INIT_STAGE = "random_init"  # the stage of the random-init checkpoints (`workers/random_init`)


def control_checkpoint(source: str) -> str:
    """The random-init control of checkpoint `source` ("pretrain/tiny" -> "random_init/pretrain/tiny")."""
    return f"{RANDOM_INIT_STAGE}/{source}"


def control_source(checkpoint: str) -> str | None:
    """The trained checkpoint a random-init control is the twin of; None for a checkpoint that is no control."""
    prefix = f"{RANDOM_INIT_STAGE}/"
    return checkpoint.removeprefix(prefix) if checkpoint.startswith(prefix) else None


def control_of(checkpoint: str, task: str) -> dict[str, Any] | None:
    source = control_source(checkpoint)
    if source is not None:
        return {"kind": RANDOM_INIT_STAGE, "checkpoint": source, "task": task}
    twin = TWINS.get(task)
    if twin is not None:
        return {"kind": twin.kind, "checkpoint": checkpoint, "task": twin.base.name}
    return None
