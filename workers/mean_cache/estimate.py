"""The cost of a mean_cache cell before it runs (see workers/estimate.py): forwards of pretraining rows."""

from __future__ import annotations

from typing import Any

from ..estimate import FP32, CellCost, checkpoint_model, model_cost
from ..stage import Cell


def estimate_mean_cache_cell(cell: Cell, config: Any, cells: dict[Any, Cell], device_type: str) -> CellCost | None:
    train = checkpoint_model(cells, cell.inputs["checkpoint"])
    if train is None:
        return None  # an imported model: its shape is known only after the import
    cost = model_cost(train.model, config.tokenize.vocab_size)
    params = cell.params
    rows = params["batch_size"]
    tokens = params["batches"] * rows * train.model.n_ctx
    return CellCost(
        flops=cost.forward_flops(tokens),
        param_bytes=cost.params * FP32,
        # no backward, but every node location is recorded: about what a training step saves
        activation_bytes=cost.activation_bytes(rows * train.model.n_ctx, train.model.n_ctx, FP32, device_type),
        accelerated=cell.resources.num_gpus > 0,
        reduce=("lower mean_cache.batch_size",),
    )
