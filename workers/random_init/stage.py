"""The random_init stage's cells: one per pruned pretrain or dense checkpoint when `prune.controls` names it."""

from __future__ import annotations

from typing import Any

from ..checkpoints import CHECKPOINT, CONTROL_SOURCE_PARAM, selected_checkpoints
from ..stage import Cell, CellRef, ConfigError, Resources, Stage, Upstream
from . import STAGE_NAME

# Trained from scratch by the pipeline, so they have a training seed and an L0 schedule to copy (matched_dense
# carries its dense run's); bridges share their sparse model's, and imported models carry no training config.
SOURCE_STAGES = ("pretrain", "dense", "matched_dense")


def pruned_sources(patterns: list[str], upstream: Upstream) -> list[CellRef]:
    """The checkpoints of SOURCE_STAGES that `patterns` (prune.checkpoints) select. A pattern that names a
    checkpoint of a stage listed after this one matches nothing here: prune's own listing checks it."""
    chosen: list[CellRef] = []
    for pattern in patterns:
        try:
            refs = selected_checkpoints([pattern], upstream)
        except ConfigError:
            continue
        chosen.extend(ref for ref in refs if ref.stage in SOURCE_STAGES and ref not in chosen)
    return chosen


def random_init_cells(config: Any, upstream: Upstream) -> list[Cell]:
    if STAGE_NAME not in config.prune.controls:
        return []
    return [
        Cell(STAGE_NAME, str(ref), {CONTROL_SOURCE_PARAM: str(ref)}, {"checkpoint": ref}, Resources(num_cpus=1))
        for ref in pruned_sources(config.prune.checkpoints, upstream)
    ]


RANDOM_INIT = Stage(
    name=STAGE_NAME,
    version="1",
    deps=SOURCE_STAGES,
    cells=random_init_cells,
    # The worker module, so the key covers what builds the model, not how the cells are chosen.
    run="sparsepipe.workers.random_init.worker:run_random_init_cell",
    description="never-trained twins of the pruned checkpoints (same architecture, seed and weight L0): a control",
    matrix=True,
    provides=(CHECKPOINT,),
)
