"""The cost of a pretrain or dense cell before it runs (see workers/estimate.py)."""

from __future__ import annotations

from typing import Any

from ..estimate import CellCost, TrainShape, training_cost
from ..nn.config import TrainConfig
from ..stage import Cell


def estimate_train_cell(cell: Cell, config: Any, cells: dict[Any, Cell], device_type: str) -> CellCost:
    section = cell.stage  # "pretrain" or "dense": the config section that owns the cell's training
    shape = TrainShape(
        TrainConfig.model_validate(cell.params),
        config.tokenize.vocab_size,
        workers=cell.resources.workers,
        reduce=(
            f"raise {section}.train.microbatches (the same training, in smaller chunks)",
            "raise execution.train_workers",
            f"lower {section}.train.batch_size",
            "lower tokenize.n_ctx",
        ),
    )
    return training_cost(shape, device_type)
