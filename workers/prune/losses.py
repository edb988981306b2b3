"""Task data and the task loss shared by every pruning phase (paper §2.2, DESIGN.md "Definitions").

Splits: masks train on the task's train pairs, bisection and CARBS's choice of the best trial use the val pairs
(`TaskData.eval`), and every reported loss is measured on the test pairs (`TaskData.test`).

Task loss (`settings.loss_reduction`): "mean" averages the two-way cross-entropy over a pair's two prompts;
"pair_sum" sums them, as the reference release stores it (twice the mean). The target comparison of bisection and
every reported loss use it. Mask training optimises the mean in both (a constant factor that k_coef absorbs), so the
choice changes only the target: pair_sum at target t keeps exactly the circuit that mean keeps at t / 2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor

from ...tasks import TaskBatch, candidate_logits, load_task
from .config import PruneConfig


@dataclass
class TaskData:
    train: TaskBatch  # pool: training batches and the calibration sample are drawn from it
    eval: TaskBatch  # fixed selection set (val split): bisection, curve, CARBS's choice
    test: TaskBatch  # fixed held-out set (test split): every reported loss


def chunks(batch: TaskBatch, pairs_per_chunk: int) -> list[TaskBatch]:
    return [
        batch.select(range(s, min(s + pairs_per_chunk, batch.n_pairs)))
        for s in range(0, batch.n_pairs, pairs_per_chunk)
    ]


def by_length(batch: TaskBatch) -> TaskBatch:
    """The same pairs, shortest first (by a pair's longer prompt; ties keep their order), so that chunks of it
    (`chunks` trims each to its longest prompt) carry little padding. A loss over all pairs is unchanged, up to
    the float rounding of its sum."""
    lengths = batch.eval_pos.reshape(-1, 2).max(dim=1).values.cpu()
    return batch.select(torch.argsort(lengths, stable=True))


def concat_pairs(batches: list[TaskBatch]) -> TaskBatch:
    """The pairs of `batches` in order as one batch, right-padded with the first batch's pad token to the widest.

    Padding after a prompt's eval position changes nothing at or before it (the model is causal and every
    activation is per position), so each row's logits are those it has alone, up to float rounding."""
    width = max(int(b.tokens.shape[1]) for b in batches)
    tokens = torch.cat([F.pad(b.tokens, (0, width - b.tokens.shape[1]), value=batches[0].pad_id) for b in batches])
    return replace(
        batches[0],
        tokens=tokens,
        eval_pos=torch.cat([b.eval_pos for b in batches]),
        candidates=torch.cat([b.candidates for b in batches]),
        correct=torch.cat([b.correct for b in batches]),
        pairs=tuple(pair for b in batches for pair in b.pairs),
    )


def candidate_gap(logits: Tensor, batch: TaskBatch) -> Tensor:
    """logit(candidate 1) - logit(candidate 0) at each row's eval position: [2N]."""
    pair = candidate_logits(logits, batch).float()
    return pair[:, 1] - pair[:, 0]


LOSS_REDUCTIONS = ("mean", "pair_sum")


def pair_losses(
    gap: Tensor, correct: Tensor, scale: Tensor | float = 1.0, shift: Tensor | float = 0.0, reduction: str = "mean"
) -> Tensor:
    """[N] each pair's two-way loss (its two prompts reduced by `reduction`): what `two_way_loss` averages,
    and what a bootstrap over test pairs resamples (`intervals.py`)."""
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"unknown loss reduction {reduction!r}; choose one of {', '.join(LOSS_REDUCTIONS)}")
    z = gap * scale + shift
    sign = correct.to(z.dtype) * 2 - 1
    per_prompt = F.softplus(-sign * z).reshape(-1, 2)
    return per_prompt.sum(dim=1) if reduction == "pair_sum" else per_prompt.mean(dim=1)


def two_way_loss(
    gap: Tensor, correct: Tensor, scale: Tensor | float = 1.0, shift: Tensor | float = 0.0, reduction: str = "mean"
) -> Tensor:
    """Cross-entropy of the correct candidate under the two-way softmax, averaged over pairs.

    reduction "mean": the mean over a pair's two prompts (= the mean over all prompts);
    "pair_sum": their sum, as the reference release stores it (twice the mean).
    With logits (l0, l1) and z = l1 - l0: -log softmax = softplus(-z) if candidate 1 is correct,
    softplus(z) otherwise. `scale`/`shift` calibrate z (a shift of z is a bias towards candidate 1).
    """
    z = gap * scale + shift
    sign = correct.to(z.dtype) * 2 - 1
    per_prompt = F.softplus(-sign * z)
    if reduction == "mean":
        return per_prompt.mean()
    if reduction == "pair_sum":  # rows 2i and 2i+1 are the two prompts of pair i
        return per_prompt.reshape(-1, 2).sum(dim=1).mean()
    raise ValueError(f"unknown loss reduction {reduction!r}; choose one of {', '.join(LOSS_REDUCTIONS)}")


def load_split(task: str, tokenizer: Tokenizer, params: PruneConfig, max_tokens: int, split: str) -> TaskBatch:
    """The pairs of one split that a prune cell uses: the train pool, or the fixed val or test set."""
    if split == "train":
        # Never more train pairs than the steps and the calibration sample can use (pair i does not
        # depend on how many are generated, so a smaller pool is a prefix of the full one).
        n_pairs = min(params.train_pool_pairs, max(params.steps * params.batch_pairs, params.eval_pairs))
    else:
        n_pairs = params.eval_pairs
    return load_task(task, tokenizer, split, n_pairs, params.seed, max_tokens)


def load_task_data(task: str, tokenizer: Tokenizer, params: PruneConfig, max_tokens: int) -> TaskData:
    train, evaluation, test = (load_split(task, tokenizer, params, max_tokens, s) for s in ("train", "val", "test"))
    return TaskData(train=train, eval=evaluation, test=test)
