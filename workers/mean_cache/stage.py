"""The mean_cache stage: one cell per checkpoint, every node's mean activation (for mean ablation).

It has no config section of its own: it reads the mean-cache fields of `prune`.
"""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..prune.config import PruneConfig
from ..prune.selection import selected_checkpoints
from ..stage import Cell, CellRef, Resources, Stage

# Fields of PruneConfig that shape the mean-ablation cache; the rest do not invalidate it.
MEAN_CACHE_FIELDS = ("mean_cache_batches", "mean_cache_batch_size", "seed")


def mean_cache_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    params = {field: getattr(config.prune, field) for field in MEAN_CACHE_FIELDS}
    return [
        Cell("mean_cache", str(ref), params, {"checkpoint": ref, "tokens": CellRef("tokenize")}, Resources(num_cpus=1))
        for ref in selected_checkpoints(config, upstream)
    ]


def run_mean_cache_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_mean_cache

    run_mean_cache(ctx, PruneConfig.model_validate(params))


MEAN_CACHE = Stage(
    name="mean_cache",
    version="1",
    deps=("tokenize", "pretrain", "dense", "bridges", "imported", "random_init"),
    cells=mean_cache_cells,
    run="sparsepipe.workers.mean_cache.stage:run_mean_cache_cell",
    description="mean activations over the pretraining distribution, per checkpoint",
    matrix=True,
)
