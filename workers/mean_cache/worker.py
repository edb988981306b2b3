"""The mean-cache stage: every node location's mean activation over the pretraining distribution.

Mean ablation (paper §2.2) freezes a deleted node at its mean over pretraining
data. The means depend on the checkpoint only, so one artifact per checkpoint
serves every task and every pruning trial.

Means are taken over all positions of `mean_cache_batches` seeded batches of
the TRAIN shards, at the node-location hooks, i.e. after each AbsTopK (what
a pruning mask gates). Output: `means.safetensors` (hook name -> [width] float32).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..context import WorkContext
from ..nn.gpt import GPT, load_checkpoint, node_locations
from ..prune.config import PruneConfig
from ..train.loader import ShardLoader

MEANS_FILE = "means.safetensors"


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


def save_means(means: dict[str, Tensor], folder: Path) -> None:
    save_file({name: t.contiguous() for name, t in means.items()}, str(Path(folder) / MEANS_FILE))


def load_means(folder: str | Path) -> dict[str, Tensor]:
    path = Path(folder) / MEANS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no {MEANS_FILE}: it is not a mean-cache artifact")
    return load_file(str(path))


def run_mean_cache(ctx: WorkContext, params: PruneConfig) -> None:
    torch.set_num_threads(ctx.num_threads)
    started = time.perf_counter()
    model = load_checkpoint(ctx.input("checkpoint"), device=ctx.device).eval().requires_grad_(False)
    loader = ShardLoader(ctx.input("tokens"), "train", params.mean_cache_batch_size, seed=params.seed)
    if loader.n_ctx > model.config.n_ctx:
        raise ValueError(
            f"token rows hold n_ctx={loader.n_ctx} tokens, more than the model's n_ctx={model.config.n_ctx}"
        )

    def batches() -> Iterable[Tensor]:
        for i in range(params.mean_cache_batches):
            ctx.report({"completed": i, "total": params.mean_cache_batches, "description": "mean activations"})
            yield loader.next_batch().to(ctx.device)

    means = node_means(model, batches())
    save_means(means, ctx.out_dir)
    ctx.report(
        {"completed": params.mean_cache_batches, "total": params.mean_cache_batches, "description": "mean activations"}
    )
    ctx.metrics.update(
        {
            "batches": params.mean_cache_batches,
            "tokens": params.mean_cache_batches * params.mean_cache_batch_size * loader.n_ctx,
            "locations": len(means),
            "nodes": sum(t.numel() for t in means.values()),
            "mean_abs_mean": float(torch.cat(list(means.values())).abs().mean()),
            "seconds": time.perf_counter() - started,
        }
    )
