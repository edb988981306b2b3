"""The random_init stage's cells: one per pruned pretrain or dense checkpoint when `prune.controls` names it."""

from __future__ import annotations

from typing import Any

from ..checkpoints import CHECKPOINT, CONTROL_SOURCE_PARAM, selected_checkpoints
from ..stage import Cell, Resources, Stage, Upstream
from . import STAGE_NAME

# Trained from scratch by the pipeline, so they have a training seed and an L0 schedule to copy; bridges share
# their sparse model's, and imported models carry no training config.
SOURCE_STAGES = ("pretrain", "dense")


def random_init_cells(config: Any, upstream: Upstream) -> list[Cell]:
    if STAGE_NAME not in config.prune.controls:
        return []
    return [
        Cell(STAGE_NAME, str(ref), {CONTROL_SOURCE_PARAM: str(ref)}, {"checkpoint": ref}, Resources(num_cpus=1))
        for ref in selected_checkpoints(config.prune.checkpoints, upstream)
        if ref.stage in SOURCE_STAGES
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
