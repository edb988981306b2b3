"""The task loss every stage shares (DESIGN.md, "Definitions that every stage must share").

For each prompt, the two candidates' logits form a two-way softmax; the loss is
the cross-entropy of the correct candidate, averaged over all 2N prompts, which
is the average over pairs of the mean over the pair's two prompts.  Only the
difference of the two logits matters, so the loss ignores the rest of the
vocabulary and any shift common to all logits.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .dataset import TaskBatch


def candidate_logits(logits: Tensor, batch: TaskBatch) -> Tensor:
    """[2N, 2] logits of the two candidates at each prompt's evaluation position.

    `logits`: [2N, V] already taken at `batch.eval_pos`, or the full [2N, T, V].
    """
    if logits.dim() == 3:
        rows = torch.arange(logits.shape[0], device=logits.device)
        logits = logits[rows, batch.eval_pos.to(logits.device)]
    if logits.dim() != 2 or logits.shape[0] != len(batch):
        raise ValueError(f"expected logits [{len(batch)}, V] or [{len(batch)}, T, V], got {tuple(logits.shape)}")
    return logits.gather(1, batch.candidates.to(logits.device))


def task_loss(logits: Tensor, batch: TaskBatch, reduction: Literal["mean", "none"] = "mean") -> Tensor:
    """Two-way cross-entropy of the correct candidate: a scalar, or [2N] with reduction="none"."""
    return F.cross_entropy(
        candidate_logits(logits, batch).float(), batch.correct.to(logits.device), reduction=reduction
    )


def task_accuracy(logits: Tensor, batch: TaskBatch) -> Tensor:
    """Fraction of prompts whose correct candidate has the larger logit (ties count as wrong)."""
    two_way = candidate_logits(logits, batch)
    correct = batch.correct.to(logits.device)
    right = two_way.gather(1, correct[:, None]).squeeze(1)
    wrong = two_way.gather(1, (1 - correct)[:, None]).squeeze(1)
    return (right > wrong).float().mean()
