"""Toys for the pruning tests: a tiny model config, a tiny synthetic pair task, pretraining-like rows.

(Not in conftest.py: test modules import these by name, and every test folder has a conftest.)
"""

from __future__ import annotations

import torch

from sparsepipe.tasks import PromptPair, TaskBatch
from sparsepipe.workers.nn.config import ModelConfig

VOCAB = 16
KEYS = (2, 3)  # the token that decides the answer; candidates are tokens 0 and 1
MAX_LEN = 12


def tiny_config(**overrides) -> ModelConfig:
    # norm_eps pinned to the value these tests' pruning settings (lr 0.03, k_coef 3e-3) were chosen with: with
    # torch's default epsilon the toy trains as well, but prunes at other settings (lr 0.01, k_coef 1e-3 reach the
    # target; 0.03/3e-3 do not), so the toy stays the model it was.
    base = dict(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=16, vocab_size=VOCAB, norm_eps=1e-6)
    return ModelConfig(**{**base, **overrides})


def key_task(n_pairs: int, seed: int) -> TaskBatch:
    """Pairs of right-padded prompts of filler tokens 4..15 holding one key token at the same place:
    key 2 -> candidate 0 is right, key 3 -> candidate 1. Read at the last real token."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(2 * n_pairs, MAX_LEN, dtype=torch.long)
    eval_pos = torch.zeros(2 * n_pairs, dtype=torch.long)
    for i in range(n_pairs):
        length = int(torch.randint(4, MAX_LEN + 1, (1,), generator=g))
        filler = torch.randint(4, VOCAB, (length,), generator=g)
        where = int(torch.randint(0, length - 1, (1,), generator=g))
        for j, key in enumerate(KEYS):
            tokens[2 * i + j, :length] = filler
            tokens[2 * i + j, where] = key
            eval_pos[2 * i + j] = length - 1
    candidates = torch.tensor([[0, 1]]).repeat(2 * n_pairs, 1)
    correct = torch.arange(2 * n_pairs) % 2
    pairs = tuple(PromptPair(f"pair {i} key 2", f"pair {i} key 3", "0", "1", "0", "1") for i in range(n_pairs))
    return TaskBatch("key", "synthetic", tokens, eval_pos, candidates, correct, pad_id=0, pairs=pairs)


def random_rows(n_rows: int, seed: int, n_ctx: int = 16) -> torch.Tensor:
    """Pretraining-like rows [n_rows, n_ctx + 1] for the mean cache."""
    return torch.randint(0, VOCAB, (n_rows, n_ctx + 1), generator=torch.Generator().manual_seed(seed))


def fit_two_way(model, train: TaskBatch, steps: int, batch_pairs: int):
    """Train a model on a task's two-way loss with Adam (lr 1e-2), so pruning finds real circuits."""
    from sparsepipe.workers.prune.losses import candidate_gap, two_way_loss

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = train.select(torch.randint(train.n_pairs, (batch_pairs,), generator=generator))
        logits, _ = model(batch.tokens)
        loss = two_way_loss(candidate_gap(logits, batch), batch.correct)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)
