"""Fixtures for bridges: pretrain's tiny token stream and a dense checkpoint trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from bridge_toys import tiny_run


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sparsepipe.workers.tokenize.shards import write_token_shards

    root = tmp_path_factory.mktemp("tokens")
    write_token_shards(tiny_run.topic_rows(1024, seed=0), root, "train", tiny_run.VOCAB)
    write_token_shards(tiny_run.topic_rows(64, seed=1), root, "val", tiny_run.VOCAB)
    return root


@pytest.fixture(scope="session")
def dense_dir(tmp_path_factory: pytest.TempPathFactory, tokens_dir: Path) -> Path:
    """A dense model (d_model 24, one layer) trained 40 steps on the tiny stream."""
    from sparsepipe.workers.context import local_context
    from sparsepipe.workers.nn.config import OptimConfig, SparsityConfig
    from sparsepipe.workers.train.worker import run_pretrain

    root = tmp_path_factory.mktemp("dense")
    train = tiny_run.tiny_train_config(
        steps=40, sparsity=SparsityConfig(enabled=False), optim=OptimConfig(lr=1e-2, lr_l0_scaling=False), eval_every=40
    )
    train = train.model_copy(update={"model": train.model.model_copy(update={"d_model": 24, "afrac": None})})
    ctx = local_context(root / "out", inputs={"tokenize": tokens_dir})
    run_pretrain(ctx, train)
    return ctx.out_dir
