"""The cost of a bridges cell before it runs (see workers/estimate.py).

A bridges step trains the sparse model and, at each of the 2 * n_layer + 1 sublayer boundaries, runs two
hybrid passes (dense -> sparse, sparse -> dense) from that boundary to the logits, forward and backward: on
average half a model each, so 2 * n_layer + 1 extra passes and 2 * (2 * n_layer + 1) extra logits, all held for
the step's one backward (the activations of 2 * n_layer + 2 models: measured `small` at microbatches 4 needs
more than 17 GB on a CPU, where half as many put it at 12), plus the frozen dense model's forward
(README: a tiny-shape bridges step costs ~6.5x a sparse step; this counts 6.3x). With train.microbatches > 1
a step also runs one no-grad forward of both models over its batch first, for NMSE's whole-batch normaliser.
"""

from __future__ import annotations

from typing import Any

from ..estimate import CellCost, TrainShape, checkpoint_model, model_cost, training_cost
from ..nn.config import TrainConfig
from ..stage import Cell


def estimate_bridges_cell(cell: Cell, config: Any, cells: dict[Any, Cell], device_type: str) -> CellCost:
    train = TrainConfig.model_validate(cell.params["train"])
    vocab = config.tokenize.vocab_size
    dense = checkpoint_model(cells, cell.inputs["dense"])
    dense_forward = model_cost(dense.model, vocab).forward_flops(1) if dense is not None else 0.0
    normaliser_pass = dense_forward + model_cost(train.model, vocab).forward_flops(1) if train.microbatches > 1 else 0.0
    shape = TrainShape(
        train,
        vocab,
        workers=cell.resources.workers,
        extra_passes=2 * train.model.n_layer + 1,
        extra_logits=2 * (2 * train.model.n_layer + 1),
        extra_forward_flops_per_token=dense_forward + normaliser_pass,
        reduce=(
            "raise bridges.train.microbatches (the same training, in smaller chunks)",
            "raise execution.train_workers",
            "lower bridges.train.batch_size",
            "lower tokenize.n_ctx",
        ),
    )
    return training_cost(shape, device_type)
