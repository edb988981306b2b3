"""The mean-cache stage: every node location's mean activation over the pretraining distribution.

Mean ablation (paper §2.2) freezes a deleted node at its mean over pretraining
data. The means depend on the checkpoint only, so one artifact per checkpoint
serves every task and every pruning trial.

Means are taken over all positions of `mean_cache.batches` seeded batches of
the TRAIN shards, at the node-location hooks, i.e. after each AbsTopK (what
a pruning mask gates). Output: `means.safetensors` (`means.py`).
"""

from __future__ import annotations

import time
from typing import Iterable

import torch
from torch import Tensor

from ..context import WorkContext
from ..nn.gpt import GPT, load_checkpoint, node_locations
from ..shard_loader import ShardLoader
from .config import MeanCacheConfig
from .means import save_means


@torch.no_grad()
def node_means(model: GPT, batches: Iterable[Tensor]) -> dict[str, Tensor]:
    """Mean of every node location over all positions of `batches` (rows [B, n_ctx + 1])."""
    names = [name for name, _ in node_locations(model.config)]
    sums: dict[str, Tensor] = {}
    count = 0
    for batch in batches:
        _, recorded = model(batch[:, :-1], record=names)
        for name in names:
            total = recorded[name].double().sum(dim=(0, 1))
            sums[name] = sums[name] + total if name in sums else total
        count += batch[:, :-1].numel()
    if count == 0:
        raise ValueError("no batches to average over")
    return {name: (total / count).float().cpu() for name, total in sums.items()}


def run_mean_cache(ctx: WorkContext, params: MeanCacheConfig) -> None:
    torch.set_num_threads(ctx.num_threads)
    started = time.perf_counter()
    model = load_checkpoint(ctx.input("checkpoint"), device=ctx.device).eval().requires_grad_(False)
    loader = ShardLoader(ctx.input("tokens"), "train", params.batch_size, seed=params.seed)
    if loader.n_ctx > model.config.n_ctx:
        raise ValueError(
            f"token rows hold n_ctx={loader.n_ctx} tokens, more than the model's n_ctx={model.config.n_ctx}"
        )

    def batches() -> Iterable[Tensor]:
        for i in range(params.batches):
            ctx.report({"completed": i, "total": params.batches, "description": "mean activations"})
            yield loader.next_batch().to(ctx.device)

    means = node_means(model, batches())
    save_means(means, ctx.out_dir)
    ctx.report({"completed": params.batches, "total": params.batches, "description": "mean activations"})
    ctx.metrics.update(
        {
            "batches": params.batches,
            "tokens": params.batches * params.batch_size * loader.n_ctx,
            "locations": len(means),
            "nodes": sum(t.numel() for t in means.values()),
            "mean_abs_mean": float(torch.cat(list(means.values())).abs().mean()),
            "seconds": time.perf_counter() - started,
        }
    )
