"""The artifacts a prune cell reads, built small: a tokenize artifact, a model checkpoint, a mean cache.

The tokenizer is a real BPE on some standard-library files plus lines that close strings,
so the real task single_double_quote encodes under it. Shared by the prune and tune tests
(tune imports this file by path: see tests/tune/tune_toys.py).
"""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsepipe.workers.context import local_context
from sparsepipe.workers.mean_cache.config import MeanCacheConfig
from sparsepipe.workers.mean_cache.worker import run_mean_cache
from sparsepipe.workers.nn.config import ModelConfig
from sparsepipe.workers.nn.gpt import GPT, save_checkpoint
from sparsepipe.workers.prune.config import PruneConfig
from sparsepipe.workers.prune.worker import run_prune
from sparsepipe.workers.tokenize.shards import pack_rows, write_token_shards
from sparsepipe.workers.tokenize.worker import TOKENIZER_FILE, train_tokenizer

N_CTX = 128
VOCAB = 1024
TASK = "single_double_quote"


def small_prune_config(**overrides: Any) -> PruneConfig:
    """Prune settings that run a cell on these inputs in seconds (10 mask steps, 16 val pairs)."""
    settings: dict[str, Any] = dict(
        steps=10,
        batch_pairs=8,
        eval_pairs=16,
        train_pool_pairs=32,
        max_tokens=N_CTX,
        curve_points=4,
    )
    return PruneConfig(**{**settings, **overrides})


def model_config() -> ModelConfig:
    return ModelConfig(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=N_CTX, vocab_size=VOCAB)


def write_tokens(root: Path) -> Path:
    """tokenizer.json + 64 train and 16 val rows of N_CTX + 1 tokens."""
    root.mkdir(parents=True, exist_ok=True)
    texts = [path.read_text() for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:40]]
    texts += ['print("done")\n' * 20, "print('done')\n" * 20]
    tokenizer = train_tokenizer(texts, VOCAB)
    tokenizer.save(str(root / TOKENIZER_FILE))
    stream = np.array(tokenizer.encode("\n".join(texts[:5])).ids, dtype=np.uint16)
    write_token_shards(pack_rows(stream, N_CTX)[:64], root, "train", VOCAB)
    write_token_shards(pack_rows(stream, N_CTX)[64:80], root, "val", VOCAB)
    return root


def write_checkpoint(folder: Path, model: GPT | None = None) -> Path:
    """`model`, or a random one of model_config() (seed 0)."""
    if model is None:
        torch.manual_seed(0)
        model = GPT(model_config())
    save_checkpoint(model, folder)
    return folder


def write_prune_cell(root: Path, checkpoint_cell: str) -> dict[str, Path]:
    """The folders of one prune cell (TASK on a random model_config() model) and of its inputs, built by the
    stage workers: {"tokens", "checkpoint", "mean_cache", "prune"}. Its circuit is neither empty nor the whole
    model: the random model misses the target, so the circuit is every node left active by mask training, whose
    size penalty at a high lr leaves 43 of 304. Binarization is off (seconds, not minutes)."""
    settings = small_prune_config(binarize_pairs=0, hyper={"lr": 0.02, "k_coef": 3e-3})
    tokens = write_tokens(root / "tokens")
    checkpoint = write_checkpoint(root / "checkpoint")
    write_mean_cache(root / "mean_cache", tokens, checkpoint)
    inputs = {"checkpoint": checkpoint, "tokens": tokens, "mean_cache": root / "mean_cache"}
    torch.set_num_threads(1)
    run_prune(local_context(root / "prune", inputs=inputs, cell=f"{checkpoint_cell}:{TASK}"), settings, TASK)
    return {**inputs, "prune": root / "prune"}


# Three batches of four rows: a mean cache of these inputs in a fraction of a second.
SMALL_MEANS = MeanCacheConfig(batches=3, batch_size=4)


def write_mean_cache(
    out: Path, tokens: Path, checkpoint: Path, params: MeanCacheConfig = SMALL_MEANS
) -> dict[str, Any]:
    """Runs the mean-cache stage worker into `out`; returns its metrics."""
    ctx = local_context(out, inputs={"checkpoint": checkpoint, "tokens": tokens})
    run_mean_cache(ctx, params)
    return ctx.metrics


def commit_prune_cell(store: Any, built: dict[str, Path], checkpoint_cell: str) -> None:
    """Commit `write_prune_cell`'s folders to a pipeline Store as the runner would: the prune cell's manifest
    names its inputs (tokenize, the checkpoint, its mean cache) as parents, by key and digest."""
    from sparsepipe.pipeline.store import CommitRecord

    stage, _, cell = checkpoint_cell.partition("/")
    cells = {"tokens": ("tokenize", ""), "checkpoint": (stage, cell), "mean_cache": ("mean_cache", checkpoint_cell)}
    parents = {}
    for name, (input_stage, input_cell) in cells.items():
        key = hashlib.sha256(f"{input_stage}/{input_cell}".encode()).hexdigest()
        manifest, _ = store.commit(CommitRecord(input_stage, key, input_cell, {}, {}), built[name], 0)
        parents[name] = {"stage": input_stage, "cell": input_cell, "key": key, "digest": manifest.digest}
    prune_cell = f"{checkpoint_cell}:{TASK}"
    record = CommitRecord("prune", hashlib.sha256(prune_cell.encode()).hexdigest(), prune_cell, {}, parents)
    store.commit(record, built["prune"], 0)
