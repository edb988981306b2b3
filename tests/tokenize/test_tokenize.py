"""The tokenize worker and the token shards, without Ray: corpus edge cases, packing, the loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparsepipe.workers.context import local_context
from sparsepipe.workers.shard_loader import ShardLoader
from sparsepipe.workers.tokenize.config import TokenizeConfig
from sparsepipe.workers.tokenize.corpus import CorpusError, load_documents
from sparsepipe.workers.tokenize.shards import pack_rows, write_token_shards
from sparsepipe.workers.tokenize.worker import EOT, load_tokenizer, run_tokenize


def _params(paths, **overrides) -> TokenizeConfig:
    base = {
        "corpus": {"paths": [str(p) for p in paths]},
        "vocab_size": 300,
        "n_ctx": 16,
        "documents_per_shard": 3,
        "val_fraction": 0.2,
    }
    return TokenizeConfig.model_validate({**base, **overrides})


def test_empty_corpus_says_what_was_searched(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="the corpus is empty: searched .*empty"):
        load_documents([str(tmp_path / "empty")])


def test_binary_non_utf8_and_duplicates_are_skipped_and_counted(tmp_path):
    (tmp_path / "good.py").write_text("x = 1\n")
    (tmp_path / "copy.py").write_text("x = 1\n")
    (tmp_path / "other.py").write_text("y = 2\n")
    (tmp_path / "binary.py").write_bytes(b"\x00\x01\x02abc")
    (tmp_path / "latin1.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    documents, stats, duplicates = load_documents([str(tmp_path)])
    assert sorted(d.text for d in documents) == ["x = 1\n", "y = 2\n"]
    assert duplicates == 1 and stats.skipped_binary == 1 and stats.skipped_non_utf8 == 1


def test_jsonl_and_globs(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"content": "def a(): pass\n"}) + "\n" + json.dumps({"content": "def b(): pass\n"}) + "\n"
    )
    documents, _, _ = load_documents([str(tmp_path / "*.jsonl")], text_column="content")
    assert len(documents) == 2
    with pytest.raises(CorpusError, match="no 'text' field"):
        load_documents([str(tmp_path / "a.jsonl")])


def test_pack_rows_keeps_every_token():
    stream = np.arange(1, 38, dtype=np.uint16)
    rows = pack_rows(stream, n_ctx=8)
    assert rows.shape == (5, 9)
    # Rows overlap by one token, so every transition (t -> t+1) of the stream is trained exactly once.
    transitions = {(int(a), int(b)) for row in rows for a, b in zip(row[:-1], row[1:])}
    assert {(int(a), int(b)) for a, b in zip(stream[:-1], stream[1:])} <= transitions
    assert set(stream.tolist()) <= set(rows.reshape(-1).tolist())


def test_tokenize_worker_on_a_small_corpus_with_one_huge_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number in range(12):
        (corpus / f"m{number}.py").write_text(f"def f{number}(x):\n    return x + {number}\n")
    (corpus / "huge.py").write_text("".join(f"value_{i} = {i} * 2\n" for i in range(40_000)))
    ctx = local_context(tmp_path / "out")
    run_tokenize(ctx, _params([corpus]))
    tokenizer = load_tokenizer(str(ctx.out_dir / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == 300 and tokenizer.token_to_id(EOT) == 299
    metrics = ctx.metrics
    assert metrics["documents"] == 13 and metrics["train_tokens"] > 100_000
    loader = ShardLoader(ctx.out_dir, "train", batch_size=4, seed=0)
    assert loader.n_ctx == 16 and loader.next_batch().shape == (4, 17)
    # Resuming in a new worker reuses the saved tokenizer and shards.
    again = local_context(tmp_path / "out2", progress_dir=tmp_path / "out.progress")
    run_tokenize(again, _params([corpus]))
    assert again.metrics["shards_resumed"] == again.metrics["shards"]
    assert (again.out_dir / "tokenizer.json").read_text() == (ctx.out_dir / "tokenizer.json").read_text()


def test_loader_resumes_at_the_exact_position(tmp_path):
    rows = np.arange(50 * 9, dtype=np.uint16).reshape(50, 9) % 1000
    write_token_shards(rows, tmp_path, "train", vocab_size=1000)
    straight = ShardLoader(tmp_path, "train", batch_size=7, seed=3)
    expected = [straight.next_batch() for _ in range(12)]
    first = ShardLoader(tmp_path, "train", batch_size=7, seed=3)
    for _ in range(5):
        first.next_batch()
    resumed = ShardLoader(tmp_path, "train", batch_size=7, seed=3)
    resumed.load_state_dict(first.state_dict())
    assert all(np.array_equal(resumed.next_batch(), batch) for batch in expected[5:])
    # Every row is seen once per epoch.
    epoch = ShardLoader(tmp_path, "train", batch_size=10, seed=1)
    seen = np.concatenate([epoch.next_batch().numpy() for _ in range(5)])
    assert sorted(map(tuple, seen)) == sorted(map(tuple, rows.astype(np.int64)))


def test_batches_mix_shards_within_a_window(tmp_path):
    from sparsepipe.workers.tokenize.shards import SHARDS_FILE, write_shard

    files = []
    for shard in range(4):
        rows = np.full((50, 9), shard, dtype=np.uint16)
        write_shard(rows, str(tmp_path / f"train/part-{shard:05d}.parquet"))
        files.append({"file": f"train/part-{shard:05d}.parquet", "rows": 50, "tokens": 400})
    (tmp_path / SHARDS_FILE).write_text(
        json.dumps({"n_ctx": 8, "vocab_size": 10, "eot_id": 9, "splits": {"train": files}})
    )
    loader = ShardLoader(tmp_path, "train", batch_size=16, seed=0, window=2)
    first = loader.next_batch()
    assert len(set(first[:, 0].tolist())) == 2  # one window = two shards, interleaved
    seen = np.concatenate([first.numpy()] + [loader.next_batch().numpy() for _ in range(12)])[:200]
    assert sorted(set(seen[:, 0].tolist())) == [0, 1, 2, 3] and len(seen) == 200
