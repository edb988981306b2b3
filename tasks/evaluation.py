"""Scoring a trained model on the tasks.

The model is anything callable as `model(tokens)` with tokens [B, T] int64 that
returns logits [B, T, V], or a tuple/list whose first element is those logits
(as `sparsepipe.workers.nn.gpt.GPT` returns `(logits, recorded)`).  If the
model has `config.n_ctx`, prompts are kept within it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import torch
from tokenizers import Tokenizer
from torch import Tensor

from .dataset import DEFAULT_MAX_TOKENS, TaskBatch, load_task
from .loss import task_accuracy, task_loss
from .splits import Split

Model = Callable[[Tensor], Tensor | tuple | list]


@dataclass(frozen=True)
class TaskScore:
    task: str
    split: str
    n_pairs: int
    loss: float  # two-way cross-entropy, nats
    accuracy: float  # fraction of prompts (2 per pair) answered right

    def as_dict(self) -> dict:
        return asdict(self)


def _device(model: Model) -> torch.device:
    parameters = getattr(model, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if first is not None else torch.device("cpu")


def context_length(model: Model, default: int = DEFAULT_MAX_TOKENS) -> int:
    n_ctx = getattr(getattr(model, "config", None), "n_ctx", None)
    return min(default, n_ctx) if isinstance(n_ctx, int) else default


@torch.no_grad()
def logits_at_eval(model: Model, batch: TaskBatch, rows_per_call: int = 64) -> Tensor:
    """[2N, V] the model's logits at each prompt's evaluation position (float32, on the CPU)."""
    device, chunks = _device(model), []
    for start in range(0, len(batch), rows_per_call):
        eval_pos = batch.eval_pos[start : start + rows_per_call]
        tokens = batch.tokens[start : start + rows_per_call, : int(eval_pos.max()) + 1]
        output = model(tokens.to(device))
        logits = output[0] if isinstance(output, (tuple, list)) else output
        chunks.append(logits[torch.arange(len(eval_pos)), eval_pos.to(logits.device)].float().cpu())
    return torch.cat(chunks)


def score(model: Model, batch: TaskBatch) -> TaskScore:
    logits = logits_at_eval(model, batch)
    return TaskScore(
        batch.task, batch.split, batch.n_pairs, float(task_loss(logits, batch)), float(task_accuracy(logits, batch))
    )


def evaluate_model(
    model: Model, tokenizer: Tokenizer, names: Iterable[str], split: Split = "test", n_pairs: int = 128, seed: int = 0
) -> list[TaskScore]:
    """Loss and accuracy of `model` on each task, on `n_pairs` pairs of `split`."""
    if hasattr(model, "eval"):
        model.eval()
    max_tokens = context_length(model)
    return [score(model, load_task(name, tokenizer, split, n_pairs, seed, max_tokens)) for name in names]
