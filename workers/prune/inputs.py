"""What the trials of one (checkpoint, task) cell share, loaded once: model, means, tokenizer, task data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import Tensor

from ...tasks import load_tokenizer
from ..mean_cache.means import load_means
from ..nn.gpt import GPT, load_checkpoint
from ..shard_loader import ShardLoader
from .config import PruneConfig
from .losses import TaskData, load_task_data


@dataclass
class PruneInputs:
    """What trials of one (checkpoint, task) cell share, loaded once."""

    checkpoint: Path
    model: GPT
    means: dict[str, Tensor] | None
    tokenizer: Tokenizer
    task_data: TaskData
    tokens: Path  # the tokenize artifact: the pretraining rows of the activation examples


def load_prune_inputs(
    checkpoint: Path, mean_cache: Path | None, tokens: Path, task: str, params: PruneConfig, device: str = "cpu"
) -> PruneInputs:
    """Model, means (None for zero ablation), tokenizer and task data; `mean_cache` is only read for mean ablation."""
    model = load_checkpoint(checkpoint, device=device).eval().requires_grad_(False)
    means = load_means(mean_cache) if params.ablation == "mean" else None
    tokenizer = load_tokenizer(tokens)
    task_data = load_task_data(task, tokenizer, params, min(params.max_tokens, model.config.n_ctx))
    return PruneInputs(Path(checkpoint), model, means, tokenizer, task_data, Path(tokens))


def pretraining_rows(tokens: Path, count: int) -> Tensor:
    """The first `count` rows of the val split (fewer if it has fewer), inputs only: [N, n_ctx]."""
    batches, total = [], 0
    for batch in ShardLoader(tokens, "val", count).iter_eval(count):
        batches.append(batch[: count - total])
        total += batches[-1].shape[0]
        if total == count:
            break
    return torch.cat(batches)[:, :-1]
