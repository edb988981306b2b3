"""The counted bigram baseline."""

from __future__ import annotations

import numpy as np
import torch

from sparsepipe.workers.tokenize.shards import write_token_shards
from sparsepipe.workers.train.bigram_baseline import (
    bigram_log_probs,
    bigram_loss,
    count_bigrams,
    train_bigram_log_probs,
)


def test_counts_every_transition_of_every_row():
    rows = np.array([[0, 1, 2, 0], [2, 2, 1, 0]], dtype=np.uint16)
    counts = count_bigrams([rows[:1], rows[1:]], vocab_size=3)
    expected = np.zeros((3, 3), dtype=np.int64)
    for a, b in [(0, 1), (1, 2), (2, 0), (2, 2), (2, 1), (1, 0)]:
        expected[a, b] += 1
    assert np.array_equal(counts, expected)


def test_smoothed_table_is_normalised_and_never_zero():
    counts = np.array([[0, 50, 0], [10, 0, 10], [0, 0, 0]])
    log_probs = bigram_log_probs(counts)
    assert torch.allclose(log_probs.exp().sum(dim=1), torch.ones(3))
    assert torch.isfinite(log_probs).all()
    assert log_probs[0, 1].exp() > 0.97  # a well-counted row stays sharp
    # An unseen context falls back to the unigram distribution of next tokens.
    unigram = (counts.sum(axis=0) + 1) / (counts.sum() + 3)
    assert torch.allclose(log_probs[2].exp(), torch.tensor(unigram, dtype=torch.float32))


def test_deterministic_stream_has_near_zero_bigram_loss(tmp_path):
    cycle = np.tile(np.arange(5, dtype=np.uint16), 200)[: 99 * 9].reshape(99, 9)
    write_token_shards(cycle, tmp_path, "train", vocab_size=5)
    log_probs = train_bigram_log_probs(tmp_path)
    loss = bigram_loss(log_probs, [torch.from_numpy(cycle[:10].astype(np.int64))])
    assert 0 < loss < 0.01
