"""Fixtures for pruning: a tiny random GPT, and a GPT trained on the synthetic key task with its means."""

from __future__ import annotations

import pytest
import torch
from pruning_toys import fit_two_way, key_task, random_rows, tiny_config

from sparsepipe.workers.mean_cache.worker import node_means
from sparsepipe.workers.nn.gpt import GPT


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture
def random_model() -> GPT:
    torch.manual_seed(0)
    return GPT(tiny_config()).eval()


@pytest.fixture(scope="session")
def trained_model() -> GPT:
    """A one-layer model that solves the key task (two-way loss well under 0.05)."""
    torch.manual_seed(0)
    model = GPT(tiny_config())
    return fit_two_way(model, key_task(256, seed=0), steps=60, batch_pairs=32)


@pytest.fixture(scope="session")
def trained_means(trained_model) -> dict[str, torch.Tensor]:
    return node_means(trained_model, [random_rows(16, seed=5)])
