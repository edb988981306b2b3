"""Checks that span stages: values that cannot work, and stages that disagree.

Each stage's model validates its own fields; what no single model can see is
checked here, once the whole config is merged, so a bad combination is exit 2
at config time (naming the keys) instead of a failure inside a worker after the
upstream stages already ran.  Kept apart from the models so it can move with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import PipelineConfig

# Far beyond every preset (paper: 256); one float32 attention map of one head at this length is 256 MB.
MAX_N_CTX = 8192


def _trainers(config: "PipelineConfig") -> list[tuple[str, object]]:
    """(key prefix, TrainConfig) of every stage that trains on the token shards."""
    found: list[tuple[str, object]] = [("pretrain.train", config.pretrain.train)]
    if config.dense.enabled:
        found.append(("dense.train", config.dense.train))
    if config.bridges.enabled:
        found.append(("bridges.train", config.bridges.train))
    return found


def cross_stage_problems(config: "PipelineConfig") -> list[str]:
    """Every problem of this kind, each naming the keys involved."""
    problems = []
    tokenize = config.tokenize
    if tokenize.n_ctx > MAX_N_CTX:
        problems.append(f"tokenize.n_ctx={tokenize.n_ctx} is above the largest supported context, {MAX_N_CTX}")
    for prefix, train in _trainers(config):
        model = train.model  # type: ignore[attr-defined]
        if model.n_ctx > MAX_N_CTX:
            problems.append(f"{prefix}.model.n_ctx={model.n_ctx} is above the largest supported context, {MAX_N_CTX}")
        if model.n_ctx != tokenize.n_ctx:
            problems.append(
                f"{prefix}.model.n_ctx={model.n_ctx} but tokenize.n_ctx={tokenize.n_ctx}: the model trains on the token rows, "
                "so both must be equal"
            )
        if model.vocab_size is not None and model.vocab_size < tokenize.vocab_size:
            problems.append(
                f"{prefix}.model.vocab_size={model.vocab_size} is smaller than tokenize.vocab_size={tokenize.vocab_size}; "
                "leave it unset (taken from the tokenizer) or raise it"
            )
    return problems
