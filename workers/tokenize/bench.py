"""`sparsepipe bench tokenize`: the stage's encoding throughput against a single-process HF tokenizers run, side
by side."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..context import local_context
from .config import TokenizeConfig
from .corpus import load_documents
from .worker import encode_shard, run_tokenize, sample_for_tokenizer, train_tokenizer


def bench_tokenize(
    max_documents: int | None = None, submit: Any = None, num_threads: int | None = None
) -> dict[str, Any]:
    """Encode the default corpus twice on the same files: one process, then the stage's parallel units."""
    params = TokenizeConfig.model_validate({"corpus": {"max_documents": max_documents}})
    documents, _, _ = load_documents([], max_documents=max_documents)
    texts = [d.text for d in documents]
    corpus_mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    tokenizer = train_tokenizer(sample_for_tokenizer(documents, params.tokenizer_train_bytes), params.vocab_size)

    started = time.perf_counter()
    rows = encode_shard(tokenizer.to_str(), texts, params.n_ctx)
    baseline_s = time.perf_counter() - started
    tokens = int(rows.shape[0] * params.n_ctx)

    with tempfile.TemporaryDirectory() as scratch:
        ctx = local_context(Path(scratch) / "out", num_threads=num_threads or os.cpu_count() or 1, submit=submit)
        run_tokenize(ctx, params)
        stage = ctx.metrics
    stage_encode_s = stage["encode_seconds"]
    stage_tokens = stage["train_tokens"] + stage["val_tokens"]
    return {
        "corpus_mb": round(corpus_mb, 3),
        "documents": len(texts),
        "cpus": os.cpu_count(),
        "baseline_single_process": {
            "seconds": round(baseline_s, 3),
            "mb_per_s": round(corpus_mb / baseline_s, 3),
            "tokens_per_s": round(tokens / baseline_s),
        },
        "stage": {
            "encode_seconds": stage_encode_s,
            "tokenizer_seconds": stage["tokenizer_seconds"],
            "mb_per_s": round(corpus_mb / stage_encode_s, 3),
            "tokens_per_s": round(stage_tokens / stage_encode_s),
            "shards": stage["shards"],
        },
        "stage_over_baseline_throughput": round(baseline_s / stage_encode_s, 3),
    }


def measure(quick: bool, submit: Any = None, cpus: int | None = None) -> dict[str, Any]:
    """`sparsepipe bench tokenize` (run inside a local Ray instance, see tokenize/stage.py)."""
    return bench_tokenize(max_documents=200 if quick else None, submit=submit, num_threads=cpus)
