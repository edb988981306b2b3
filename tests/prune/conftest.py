"""Fixtures for pruning: a tiny random GPT, and a GPT trained on the synthetic key task with its means."""

from __future__ import annotations

import pytest
import torch

from sparsepipe.workers.mean_cache import node_means
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.prune import candidate_gap, two_way_loss

from pruning_toys import key_task, random_rows, tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def random_model() -> GPT:
    torch.manual_seed(0)
    return GPT(tiny_config()).eval()


@pytest.fixture(scope="session")
def trained_model() -> GPT:
    """A one-layer model that solves the key task (two-way loss well under 0.05)."""
    torch.manual_seed(0)
    model = GPT(tiny_config())
    train = key_task(256, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        batch = train.select(torch.randint(train.n_pairs, (32,), generator=g))
        logits, _ = model(batch.tokens)
        loss = two_way_loss(candidate_gap(logits, batch), batch.correct)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def trained_means(trained_model) -> dict[str, torch.Tensor]:
    return node_means(trained_model, [random_rows(16, seed=5)])
