"""The mean_cache stage: one cell per checkpoint, every node's mean activation (for mean ablation).

Its settings are the `mean_cache` section; its cells are the checkpoints the run prunes (the value of
`prune.checkpoints`, which `--checkpoints` sets), read as config data: no prune module is imported, so
the mean cache's key covers only the code that computes means.
"""

from __future__ import annotations

from typing import Any

from ..checkpoints import CHECKPOINT, selected_checkpoints
from ..context import WorkContext
from ..stage import Cell, CellRef, Resources, Stage, Upstream
from .config import PRESETS, MeanCacheConfig


def mean_cache_cells(config: Any, upstream: Upstream) -> list[Cell]:
    params = config.mean_cache.model_dump(mode="json")
    # A GPU where there is one (as a trainer's): the paper preset's cache is ~1.7 PFLOPs of forwards, 17 h on a core.
    resources = Resources(num_cpus=1, num_gpus=config.execution.gpus_per_trainer)
    return [
        Cell("mean_cache", str(ref), params, {"checkpoint": ref, "tokens": CellRef("tokenize")}, resources)
        for ref in selected_checkpoints(config.prune.checkpoints, upstream)
    ]


def run_mean_cache_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_mean_cache

    run_mean_cache(ctx, MeanCacheConfig.model_validate(params))


MEAN_CACHE = Stage(
    name="mean_cache",
    version="1",
    deps=("tokenize",),
    dep_kinds=(CHECKPOINT,),
    cells=mean_cache_cells,
    run="sparsepipe.workers.mean_cache.stage:run_mean_cache_cell",
    description="mean activations over the pretraining distribution, per checkpoint",
    matrix=True,
    config={"mean_cache": MeanCacheConfig},
    presets=PRESETS,
    estimate="sparsepipe.workers.mean_cache.estimate:estimate_mean_cache_cell",
)
