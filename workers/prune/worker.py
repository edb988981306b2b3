"""The worker of an untuned prune cell: one trial with the fixed hyperparameters `params.hyper`, with its
loss-vs-size curve (the circuit it writes); the `prune.seeds` repeats skip the curve."""

from __future__ import annotations

import torch

from ..context import WorkContext
from .ablations import add_ablation_report
from .config import PruneConfig
from .inputs import load_prune_inputs
from .outputs import (
    write_prune_outputs,
)
from .seeds import repeat_seeds, seed_row
from .trial import add_binarization, run_trial


def run_prune(ctx: WorkContext, params: PruneConfig, task: str) -> None:
    """Prune one checkpoint on one task with the fixed hyperparameters `params.hyper`."""
    torch.set_num_threads(ctx.num_threads)
    mean_cache = ctx.input("mean_cache") if params.ablation == "mean" else None
    inputs = load_prune_inputs(ctx.input("checkpoint"), mean_cache, ctx.input("tokens"), task, params, ctx.device)
    result = run_trial(
        inputs.model,
        inputs.means,
        inputs.task_data,
        params.hyper,
        params,
        params.seed,
        task=task,
        progress=ctx.report,
        curve=True,
    )
    seeds = [seed_row(result.to_json())]
    for seed in repeat_seeds(params.seed, params.seeds):  # prune.seeds: the same trial with other seeds
        again = run_trial(inputs.model, inputs.means, inputs.task_data, params.hyper, params, seed, task=task)
        seeds.append(seed_row(again.to_json()))
    add_binarization(inputs, params, result)
    add_ablation_report(inputs, params, result, ctx.input("mean_cache"))
    ctx.report(
        {"completed": params.steps, "total": params.steps, "description": f"{result.nodes} nodes, {result.edges} edges"}
    )
    write_prune_outputs(ctx, inputs, params, result, seeds)
