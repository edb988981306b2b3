"""Fixtures for the pretrain worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_run import VOCAB, topic_rows

from sparsepipe.workers.tokenize.shards import write_token_shards


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tokens")
    write_token_shards(topic_rows(2048, seed=0), root, "train", VOCAB)
    write_token_shards(topic_rows(128, seed=1), root, "val", VOCAB)
    return root
