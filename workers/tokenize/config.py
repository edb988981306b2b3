"""The tokenize stage's settings, and its values in each preset."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..stage import StrictModel

# The longest row the pipeline supports: far beyond every preset (paper: 256). The models train on these
# rows (their n_ctx must equal it), and one float32 attention map of one head at this length is 256 MB.
MAX_N_CTX = 8192


class CorpusConfig(StrictModel):
    paths: list[str] = Field(
        default_factory=list,
        description="Folders, globs, files, .jsonl/.parquet with a text column, local or s3://. "
        "Empty: the .py files of the running interpreter's standard library.",
    )
    text_column: str = "text"
    max_documents: int | None = Field(
        None, ge=1, description="Keep at most this many documents (after dedup), for quick runs."
    )


class TokenizeConfig(StrictModel):
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    vocab_size: int = Field(2048, ge=260, le=65535)
    n_ctx: int = Field(256, ge=8, le=MAX_N_CTX, description="Rows hold n_ctx + 1 tokens (inputs and shifted targets).")
    val_fraction: float = Field(0.02, gt=0, lt=0.5)
    tokenizer_train_bytes: int = Field(64_000_000, ge=10_000, description="Corpus bytes sampled to train the BPE.")
    documents_per_shard: int = Field(2000, ge=1, description="A shard holds at most this many documents ...")
    shard_bytes: int = Field(
        2_000_000,
        ge=1000,
        description="... or about this many bytes of text: the unit of parallel encoding and of resume.",
    )
    seed: int = 0


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "tokenize": {
            "vocab_size": 2048,
            "n_ctx": 128,
            "corpus": {"max_documents": 300},
            "tokenizer_train_bytes": 8_000_000,
            "documents_per_shard": 100,
        }
    },
    "tiny": {"tokenize": {"vocab_size": 2048, "n_ctx": 128}},
    "small": {"tokenize": {"vocab_size": 2048, "n_ctx": 256}},
    "paper": {"tokenize": {"vocab_size": 2048, "n_ctx": 256}},
}
