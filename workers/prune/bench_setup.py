"""What `sparsepipe bench prune` prunes: a model of a fixed shape trained for a few seconds on a synthetic pair task.

The pruning phases cost what the model shape, the batch and the number of passes make them cost, not what the
weights mean; but bisection and the final phases only run in full when mask training finds a circuit that reaches
the target. So the benchmark trains its model on a task it can learn in seconds (which of two key tokens occurs
in a prompt of filler tokens, read at the last token: an attention lookup), with the tiny preset's pruning
settings, instead of needing a pipeline store.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...tasks import PromptPair, TaskBatch
from ..nn.config import ModelConfig
from ..nn.gpt import GPT
from .losses import TaskData, candidate_gap, two_way_loss

KEYS = (2, 3)  # the token that decides the answer: key 2 -> candidate 0 is right, key 3 -> candidate 1
FIRST_FILLER = 4


@dataclass(frozen=True)
class BenchShape:
    name: str
    model: dict[str, int]
    vocab: int
    fit_steps: int  # steps that train the model on the key task


SHAPES = {
    "tiny": BenchShape("tiny", {"n_layer": 2, "d_model": 128, "n_head": 8, "d_head": 16, "n_ctx": 64}, 2048, 60),
    "larger": BenchShape("larger", {"n_layer": 4, "d_model": 256, "n_head": 16, "d_head": 16, "n_ctx": 64}, 2048, 60),
}


def key_task(n_pairs: int, seed: int, vocab: int, max_len: int) -> TaskBatch:
    """Pairs of right-padded prompts of filler tokens holding one key token at the same place."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(2 * n_pairs, max_len, dtype=torch.long)
    eval_pos = torch.zeros(2 * n_pairs, dtype=torch.long)
    for i in range(n_pairs):
        length = int(torch.randint(max_len // 4, max_len + 1, (1,), generator=g))
        filler = torch.randint(FIRST_FILLER, vocab, (length,), generator=g)
        where = int(torch.randint(0, length - 1, (1,), generator=g))
        for j, key in enumerate(KEYS):
            tokens[2 * i + j, :length] = filler
            tokens[2 * i + j, where] = key
            eval_pos[2 * i + j] = length - 1
    candidates = torch.tensor([[0, 1]]).repeat(2 * n_pairs, 1)
    correct = torch.arange(2 * n_pairs) % 2
    pairs = tuple(PromptPair(f"pair {i} key 2", f"pair {i} key 3", "0", "1", "0", "1") for i in range(n_pairs))
    return TaskBatch("key", "synthetic", tokens, eval_pos, candidates, correct, pad_id=0, pairs=pairs)


def key_task_data(train_pairs: int, eval_pairs: int, vocab: int, max_len: int) -> TaskData:
    return TaskData(
        train=key_task(train_pairs, 0, vocab, max_len),
        eval=key_task(eval_pairs, 1, vocab, max_len),
        test=key_task(eval_pairs, 2, vocab, max_len),
    )


def fitted_model(shape: BenchShape, train: TaskBatch, device: torch.device, seed: int = 0) -> GPT:
    """A model of `shape` trained on the key task's two-way loss (Adam, lr 3e-3, 32 pairs a step)."""
    torch.manual_seed(seed)
    model = GPT(ModelConfig(**shape.model, vocab_size=shape.vocab)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(shape.fit_steps):
        batch = train.select(torch.randint(train.n_pairs, (32,), generator=generator)).to(device)
        logits, _ = model(batch.tokens, positions=batch.eval_pos)
        loss = two_way_loss(candidate_gap(logits, batch), batch.correct)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


def pretraining_like_rows(n_rows: int, vocab: int, n_ctx: int, seed: int = 5) -> Tensor:
    """Random token rows [n_rows, n_ctx] standing in for the pretraining rows of the viewer's examples."""
    return torch.randint(0, vocab, (n_rows, n_ctx), generator=torch.Generator().manual_seed(seed))
