"""The tokenize stage: corpus -> byte-level BPE tokenizer -> packed Arrow (Parquet) shards.

Documents are de-duplicated exactly, split train/val by their hash, joined
with the end-of-text token and packed into rows of n_ctx + 1 tokens (see
`data.py`).  Encoding runs in parallel: one unit per shard through
`ctx.submit` (Ray tasks under the pipeline).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from tokenizers import Tokenizer, pre_tokenizers, trainers

from ..context import WorkContext, run_calls
from . import generated
from .config import CORPUS_RECORD, TokenizeConfig
from .corpus import Document, corpus_record, load_documents
from .encoding import EOT, encode_shard
from .given import given_tokenizer, new_bpe_tokenizer
from .shards import SHARDS_FILE, write_shard

TOKENIZER_FILE = "tokenizer.json"


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE with `<|endoftext|>` as the last id (as in the reference's tinypython_2k)."""
    tokenizer = new_bpe_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tokenizer.add_special_tokens([EOT])
    if tokenizer.token_to_id(EOT) != vocab_size - 1:
        raise RuntimeError(
            f"the corpus is too small for a vocabulary of {vocab_size}: BPE found only "
            f"{tokenizer.get_vocab_size() - 1} merges+bytes; lower tokenize.vocab_size or add documents"
        )
    return tokenizer


def load_tokenizer(path: str) -> Tokenizer:
    return Tokenizer.from_file(str(path))


def split_of(document: Document, val_fraction: float) -> str:
    return "val" if int(document.digest[:12], 16) / 16**12 < val_fraction else "train"


def sample_for_tokenizer(documents: list[Document], budget_bytes: int) -> list[str]:
    """A deterministic sample (by hash order) of whole documents up to the byte budget."""
    texts, used = [], 0
    for document in sorted(documents, key=lambda d: d.digest):
        if used >= budget_bytes:
            break
        texts.append(document.text)
        used += len(document.text)
    return texts


def shard_texts(documents: list[Document], max_documents: int, max_bytes: int) -> list[list[str]]:
    """Cut documents into shards of at most `max_documents` documents or about `max_bytes` bytes."""
    shards: list[list[str]] = [[]]
    size = 0
    for document in documents:
        if shards[-1] and (len(shards[-1]) >= max_documents or size >= max_bytes):
            shards.append([])
            size = 0
        shards[-1].append(document.text)
        size += len(document.text)
    return shards


def _tokenizer_for_run(
    ctx: WorkContext, train_documents: list[Document], params: TokenizeConfig, extra_texts: list[str] = ()
) -> str:
    """Train the tokenizer, or reuse the one a killed run already trained (its shards depend on it); or
    convert the given one (`tokenize.tokenizer`)."""
    if params.tokenizer is not None:
        tokenizer = given_tokenizer(params.tokenizer)
        if tokenizer.get_vocab_size() != params.vocab_size or tokenizer.token_to_id(EOT) != params.vocab_size - 1:
            raise ValueError(
                f"tokenize.tokenizer {params.tokenizer} has {tokenizer.get_vocab_size()} ids with {EOT} at "
                f"{tokenizer.token_to_id(EOT)}; set tokenize.vocab_size to its size (end-of-text last)"
            )
        return tokenizer.to_str()
    saved = ctx.out_dir / ".tokenizer.progress.json"
    if ctx.progress is not None and ctx.progress.get(TOKENIZER_FILE, saved):
        text = saved.read_text()
        saved.unlink()
        return text
    tokenizer = train_tokenizer(
        sample_for_tokenizer(train_documents, params.tokenizer_train_bytes) + list(extra_texts), params.vocab_size
    )
    text = tokenizer.to_str()
    if ctx.progress is not None:
        saved.write_text(text)
        ctx.progress.put(TOKENIZER_FILE, saved)
        saved.unlink()
    return text


def _encode_all(ctx: WorkContext, units: list[tuple[str, str, list[str]]], tokenizer_json: str, n_ctx: int) -> int:
    """Encode every shard in waves, keeping finished shards in the progress area; returns how many were resumed."""
    todo = []
    for split, relative, texts in units:
        target = ctx.out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if ctx.progress is None or not ctx.progress.get(relative, target):
            todo.append((relative, texts))
    resumed = len(units) - len(todo)
    done = [resumed]
    if resumed:
        ctx.report(
            {
                "completed": resumed,
                "total": len(units),
                "description": f"resumed: {resumed}/{len(units)} shards already encoded",
                "note": f"resumed with {resumed}/{len(units)} shards already encoded",
            }
        )

    def save(number: int, rows: np.ndarray) -> None:
        relative = todo[number][0]
        write_shard(rows, str(ctx.out_dir / relative))
        if ctx.progress is not None:
            ctx.progress.put(relative, ctx.out_dir / relative)
        done[0] += 1
        ctx.report({"completed": done[0], "total": len(units), "description": f"encoded {done[0]}/{len(units)} shards"})

    run_calls(
        ctx, [(encode_shard, (tokenizer_json, texts, n_ctx), {"num_cpus": 1}) for _, texts in todo], on_result=save
    )
    return resumed


def run_tokenize(ctx: WorkContext, params: TokenizeConfig) -> None:
    started = time.perf_counter()
    if params.generated.weight < 1:
        documents, stats, duplicates = load_documents(
            params.corpus.paths, params.corpus.text_column, params.corpus.max_documents, params.corpus.site_packages
        )
        available = len(documents)
        documents = generated.sample_real(documents, generated.real_budget(params))
    else:
        documents, stats, duplicates, available = [], None, 0, 0
    gen_plan = generated.plan(params, sum(len(d.text.encode("utf-8")) for d in documents))
    splits: dict[str, list[Document]] = {"train": [], "val": []}
    for document in documents:
        splits[split_of(document, params.val_fraction)].append(document)
    if documents and (not splits["val"] or not splits["train"]):
        # Tiny corpora: move the document with the smallest hash so both splits exist.
        donor, receiver = ("train", "val") if not splits["val"] else ("val", "train")
        if len(splits[donor]) < 2:
            raise ValueError(
                f"the corpus has {len(documents)} unique document(s); at least 2 are needed for a train/val split"
            )
        moved = min(splits[donor], key=lambda d: d.digest)
        splits[donor].remove(moved)
        splits[receiver].append(moved)

    # The BPE learns from real code only: its merges are what the tasks' identifiers are measured against
    # (a vocabulary shaped by the generator's word pools left no held-out task name one token).
    gen_texts = [] if splits["train"] else generated.tokenizer_sample(params, gen_plan, params.tokenizer_train_bytes)
    tokenizer_json = _tokenizer_for_run(ctx, splits["train"], params, gen_texts)
    (ctx.out_dir / TOKENIZER_FILE).write_text(tokenizer_json)
    trained_at = time.perf_counter()

    units = [
        (split, f"{split}/part-{number:05d}.parquet", texts)
        for split, docs in splits.items()
        for number, texts in enumerate(
            shard_texts(sorted(docs, key=lambda d: d.digest), params.documents_per_shard, params.shard_bytes)
        )
    ]
    ctx.report({"completed": 0, "total": len(units), "description": "encoding shards"})
    resumed = _encode_all(ctx, units, tokenizer_json, params.n_ctx)
    gen = generated.generate_all(ctx, params, gen_plan, tokenizer_json)
    units += [(split, name, []) for pair in gen_plan.shard_names for split, name in zip(("train", "val"), pair)]

    index: dict[str, Any] = {
        "n_ctx": params.n_ctx,
        "vocab_size": params.vocab_size,
        "eot_id": params.vocab_size - 1,
        "splits": {"train": [], "val": []},
    }
    for split, relative, _ in units:
        rows = pq.ParquetFile(ctx.out_dir / relative).metadata.num_rows
        index["splits"][split].append({"file": relative, "rows": rows, "tokens": rows * params.n_ctx})
    (ctx.out_dir / SHARDS_FILE).write_text(json.dumps(index, indent=2))

    corpus_bytes = sum(len(d.text.encode("utf-8")) for d in documents)
    record = corpus_record(documents, stats)
    (ctx.out_dir / CORPUS_RECORD).write_text(json.dumps(record, indent=1))
    ctx.metrics.update(
        {
            "corpus_digest": record["digest"],
            "documents": len(documents),
            "train_documents": len(splits["train"]),
            "val_documents": len(splits["val"]),
            "duplicates_removed": duplicates,
            "skipped_files": stats.skipped_files if stats else 0,
            "skipped_binary": stats.skipped_binary if stats else 0,
            "skipped_non_utf8": stats.skipped_non_utf8 if stats else 0,
            "real_documents_available": available,
            "corpus_bytes": corpus_bytes,
            "generated_documents": gen["documents"],
            "generated_train_documents": gen["train_documents"],
            "generated_bytes": gen["bytes"],
            "generated_units_resumed": gen["units_resumed"],
            "generated_fraction": round(gen["bytes"] / max(1, gen["bytes"] + corpus_bytes), 4),
            "train_tokens": sum(s["tokens"] for s in index["splits"]["train"]),
            "val_tokens": sum(s["tokens"] for s in index["splits"]["val"]),
            "shards": len(units),
            "shards_resumed": resumed,
            "vocab_size": params.vocab_size,
            "tokenizer_seconds": round(trained_at - started, 3),
            "encode_seconds": round(time.perf_counter() - trained_at, 3),
        }
    )
