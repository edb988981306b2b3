"""The random_init stage: a never-trained twin of every pruned pretrain and dense checkpoint (a control).

`random_init/<checkpoint>` (e.g. "random_init/pretrain/tiny") has the trained model's architecture, is initialised
with its training seed and carries its final weight L0 (weight top-k at the trained model's final fractions), but
sees no data. Pruned with the same settings and CARBS budget as its twin, it says how small a circuit pruning finds
where training put nothing to find (DESIGN.md, "Controls").
"""

from __future__ import annotations

STAGE_NAME = "random_init"


def control_checkpoint(source: str) -> str:
    """The random-init control of checkpoint `source` ("pretrain/tiny" -> "random_init/pretrain/tiny")."""
    return f"{STAGE_NAME}/{source}"


def control_source(checkpoint: str) -> str | None:
    """The trained checkpoint a random-init control is the twin of; None for a checkpoint that is no control."""
    prefix = f"{STAGE_NAME}/"
    return checkpoint.removeprefix(prefix) if checkpoint.startswith(prefix) else None
