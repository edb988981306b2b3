"""Corpus files and token shards read straight from an S3-protocol server (moto's, on loopback)."""

from __future__ import annotations

import numpy as np
import s3fs

from sparsepipe.workers.shard_loader import ShardLoader
from sparsepipe.workers.tokenize.corpus import load_documents
from sparsepipe.workers.tokenize.shards import write_token_shards


def _fs() -> s3fs.S3FileSystem:
    s3fs.S3FileSystem.clear_instance_cache()
    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)


def test_corpus_from_s3_folder_and_glob(s3_url):
    fs = _fs()
    fs.pipe(f"{s3_url}/code/a.py", b"def a():\n    return 1\n")
    fs.pipe(f"{s3_url}/code/sub/b.py", b"def b():\n    return 2\n")
    fs.pipe(f"{s3_url}/code/notes.txt", b"not python")
    documents, stats, _ = load_documents([f"{s3_url}/code"])
    assert sorted(d.text for d in documents) == ["def a():\n    return 1\n", "def b():\n    return 2\n"]
    assert all(d.source.startswith("s3://") for d in documents)
    globbed, _, _ = load_documents([f"{s3_url}/code/*.py"])
    assert [d.text for d in globbed] == ["def a():\n    return 1\n"]


def test_loader_streams_shards_from_s3(s3_url, tmp_path):
    rows = (np.arange(40 * 9, dtype=np.uint16).reshape(40, 9) % 500).astype(np.uint16)
    write_token_shards(rows, tmp_path / "tokens", "train", vocab_size=500)
    _fs().put(str(tmp_path / "tokens"), f"{s3_url}/tokens", recursive=True)
    remote = ShardLoader(f"{s3_url}/tokens", "train", batch_size=8, seed=0)
    local = ShardLoader(tmp_path / "tokens", "train", batch_size=8, seed=0)
    for _ in range(6):
        assert np.array_equal(remote.next_batch(), local.next_batch())
