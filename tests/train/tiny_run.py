"""A tiny, learnable token stream and tiny training configs for the pretrain tests."""

from __future__ import annotations

import numpy as np

from sparsepipe.workers.nn.config import ModelConfig, OptimConfig, SparsityConfig, TrainConfig

VOCAB = 16
N_CTX = 32
TOPICS = 4


def topic_rows(n_rows: int, seed: int) -> np.ndarray:
    """Rows whose tokens are drawn from one hidden topic per row.

    Topic z draws uniformly from tokens 4z..4z+7 (mod 16), so every token belongs to two topics:
    the previous token alone leaves the topic ambiguous (bigram entropy ~2.43 nats) while the
    context reveals it (~2.08 nats). A model that attends over the context beats the bigram table.
    """
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, TOPICS, size=(n_rows, 1))
    return ((4 * topics + rng.integers(0, 8, size=(n_rows, N_CTX + 1))) % VOCAB).astype(np.uint16)


def tiny_train_config(steps: int = 20, **overrides) -> TrainConfig:
    model = ModelConfig(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=N_CTX)
    base = dict(
        model=model,
        optim=OptimConfig(lr=1e-2),
        sparsity=SparsityConfig(target_l0=0.25),
        batch_size=8,
        steps=steps,
        eval_every=10,
        eval_batches=2,
        checkpoint_every=5,
    )
    return TrainConfig(**{**base, **overrides})
