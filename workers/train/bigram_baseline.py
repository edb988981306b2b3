"""The bigram baseline: what the previous token alone predicts, estimated by counting.

The table is counted over every next-token transition of the TRAIN split and
smoothed towards the unigram distribution (a Dirichlet prior with weight
PRIOR_WEIGHT; the unigram itself is add-one smoothed):

    p(b | a) = (count(a, b) + PRIOR_WEIGHT * p_unigram(b)) / (count(a) + PRIOR_WEIGHT)

Unlike add-one on the vocab x vocab table, this does not flatten rows seen only
a few times towards uniform, so the baseline stays honest on small corpora.
Deterministic: no randomness, no tuning on val.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from ..tokenize.shards import ShardIndex, read_shard

PRIOR_WEIGHT = 1.0


def count_bigrams(rows: Iterable[np.ndarray], vocab_size: int) -> np.ndarray:
    """[vocab, vocab] int64 counts of (token, next token) over rows of n_ctx + 1 ids."""
    counts = np.zeros(vocab_size * vocab_size, dtype=np.int64)
    for block in rows:
        block = block.astype(np.int64)
        pairs = block[:, :-1] * vocab_size + block[:, 1:]
        counts += np.bincount(pairs.reshape(-1), minlength=vocab_size * vocab_size)
    return counts.reshape(vocab_size, vocab_size)


def bigram_log_probs(counts: np.ndarray) -> Tensor:
    """Smoothed log p(next | token) as a float32 [vocab, vocab] tensor."""
    counts = counts.astype(np.float64)
    unigram = counts.sum(axis=0) + 1.0
    unigram /= unigram.sum()
    probs = (counts + PRIOR_WEIGHT * unigram[None, :]) / (counts.sum(axis=1, keepdims=True) + PRIOR_WEIGHT)
    return torch.from_numpy(np.log(probs)).float()


def train_bigram_log_probs(tokens_root: str | Path) -> Tensor:
    """The smoothed bigram table of the train split of a tokenize artifact."""
    index = ShardIndex.load(tokens_root)
    shards = (read_shard(f"{index.root}/{shard['file']}") for shard in index.shards("train"))
    return bigram_log_probs(count_bigrams(shards, index.vocab_size))


def bigram_loss(log_probs: Tensor, batches: Iterable[Tensor]) -> float:
    """Mean cross-entropy of the table on batches [B, n_ctx + 1], over every position."""
    total, count = 0.0, 0
    for batch in batches:
        total -= log_probs[batch[:, :-1], batch[:, 1:]].double().sum().item()
        count += batch[:, 1:].numel()
    return total / count
