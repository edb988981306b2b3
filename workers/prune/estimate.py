"""The cost of a prune cell before it runs (see workers/estimate.py).

A trial trains node masks on the frozen model (`steps` steps of `batch_pairs` pairs, two prompts each,
forward and a backward to the masks: 2x the forward, no weight gradients), then evaluates on the
`eval_pairs` val pairs: a bisection over the kept-node count (log2 of the nodes)
for every target of the sweep, the test pairs. The loss-vs-size curve (loss and inverse loss at
`curve_points` sizes, on a quarter of the val pairs) runs once per cell, for the written circuit.
Prompts are counted at their padded width, at most `max_tokens`. A tuned cell runs
tune.iterations x tune.trials_per_iteration trials, the trials of one iteration at once (each holding
the model), on CPU cores unless tune.gpus_per_trial asks for GPUs; then `prune.seeds - 1` repeats of the
best trial, and once the binarization's refinement (its greedy initialisation, one forward of the fitting
pairs per circuit node, depends on a circuit size unknown before the cell runs and is left out).
"""

from __future__ import annotations

import math
from typing import Any

from ..estimate import FP32, CellCost, checkpoint_model, model_cost
from ..nn.gpt import node_locations
from ..stage import Cell
from .config import PruneConfig, TuneConfig
from .trial import COARSE_FRACTION


def trial_flops(prune: PruneConfig, forward_per_token: float, nodes: int) -> float:
    prompt = prune.max_tokens  # the tasks fit their prompts to the budget: measured widths are 59-63 of 64
    train_tokens = prune.steps * prune.batch_pairs * 2 * prompt
    eval_tokens = prune.eval_pairs * 2 * prompt
    bisections = len(prune.target_sweep) * (math.ceil(math.log2(max(2, nodes))) + 1)
    eval_passes = bisections + 2  # the calibration refits logit gaps: no forwards
    # A backward to the masks (no weight gradients) costs about one forward.
    return forward_per_token * (2 * train_tokens + eval_passes * eval_tokens)


def curve_flops(prune: PruneConfig, forward_per_token: float) -> float:
    """The loss-vs-size curve, once per cell: a loss and an inverse loss per size on the coarse quarter of val."""
    return forward_per_token * 2 * prune.curve_points * prune.eval_pairs * 2 * prune.max_tokens / COARSE_FRACTION


def binarization_flops(prune: PruneConfig, forward_per_token: float) -> float:
    """The binarization's refinement, once per cell: forward and backward of the fitting pairs per step."""
    return forward_per_token * 2 * prune.binarize_steps * prune.binarize_pairs * 2 * prune.max_tokens


def estimate_prune_cell(cell: Cell, config: Any, cells: dict[Any, Cell], device_type: str) -> CellCost | None:
    train = checkpoint_model(cells, cell.inputs["checkpoint"])
    if train is None:
        return None  # an imported model: its shape is known only after the import
    model = train.model.model_copy(update={"vocab_size": train.model.vocab_size or config.tokenize.vocab_size})
    prune = PruneConfig.model_validate(cell.params["prune"])
    tune = TuneConfig.model_validate(cell.params["tune"]) if "tune" in cell.params else None
    cost = model_cost(model, config.tokenize.vocab_size)
    nodes = sum(width for _, width in node_locations(model))
    trials = (tune.iterations * tune.trials_per_iteration if tune is not None else 1) + prune.seeds - 1
    on_gpu = tune is not None and tune.gpus_per_trial > 0
    step_tokens = prune.batch_pairs * 2 * prune.max_tokens
    forward_per_token = cost.forward_flops(1, prune.max_tokens, logits=False)
    return CellCost(
        flops=trials * trial_flops(prune, forward_per_token, nodes)
        + curve_flops(prune, forward_per_token)
        + binarization_flops(prune, forward_per_token),
        param_bytes=cost.params * FP32,
        optimizer_bytes=nodes * 3 * FP32,  # the mask logits and their AdamW moments
        activation_bytes=cost.activation_bytes(step_tokens, prune.max_tokens, FP32, device_type),
        accelerated=on_gpu,
        concurrent=tune.trials_per_iteration if tune is not None else 1,
        device_share=min(1.0, tune.gpus_per_trial) if on_gpu else 1.0,
        reduce=("lower prune.batch_pairs", "lower prune.max_tokens")
        + (("raise tune.gpus_per_trial",) if on_gpu else ("lower tune.trials_per_iteration",)),
        note="" if on_gpu else "trials run on CPU cores: tune.gpus_per_trial is 0",
    )
