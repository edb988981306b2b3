"""The tokenize stage's settings, and its values in each preset."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ..stage import StrictModel

# The longest row the pipeline supports: far beyond every preset (paper: 256). The models train on these
# rows (their n_ctx must equal it), and one float32 attention map of one head at this length is 256 MB.
MAX_N_CTX = 8192


CORPUS_RECORD = "corpus.json"  # a record of the tokenize artifact: the corpus digest and its environment


class CorpusConfig(StrictModel):
    paths: list[str] = Field(
        default_factory=list,
        description="Folders, globs, files, .jsonl/.parquet with a text column, local or s3://. "
        "Empty: the .py files of the running interpreter's standard library (and site-packages, see below).",
    )
    site_packages: bool = Field(
        False,
        description="With empty paths, also the .py files of the running environment's site-packages. They differ "
        "between environments (which packages are installed, a venv's own files such as an editable install's "
        "finder, which holds the checkout's path), so the same preset then gives other tokens and models in "
        "another venv or folder. Off: the standard library alone, the same in every environment of one Python.",
    )
    text_column: str = "text"
    max_documents: int | None = Field(
        None, ge=1, description="Keep at most this many documents (after dedup), for quick runs."
    )
    max_bytes: int | None = Field(
        None,
        ge=1000,
        description="Size of the whole mixed corpus (real + generated): the real documents are sampled "
        "deterministically (by content hash) to (1 - generated.weight) of it. None: every real document.",
    )


class GeneratedConfig(StrictModel):
    """The generated simple-idiom component of the corpus (paper A.6; idioms.py)."""

    weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Fraction of the corpus bytes that are generated simple-idiom programs; 0: none; 1: only those "
        "(then corpus.max_bytes sets the size).",
    )
    seed: int = 0
    documents_per_unit: int = Field(
        2000, ge=1, description="Generated documents per parallel (and resumable) unit; each becomes a shard per split."
    )


class TokenizeConfig(StrictModel):
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    generated: GeneratedConfig = Field(default_factory=GeneratedConfig)
    vocab_size: int = Field(2048, ge=260, le=65535)
    tokenizer: str | None = Field(
        None,
        description="Use this tokenizer instead of training one: our tokenizer.json, a tiktoken ranks file, or a "
        "folder with the reference release's encoder.json + vocab.bpe (local or s3://). Its size must be vocab_size.",
    )
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

    @model_validator(mode="after")
    def _generated_alone_needs_a_size(self) -> "TokenizeConfig":
        if self.generated.weight == 1 and self.corpus.max_bytes is None:
            raise ValueError(
                "tokenize.generated.weight 1 (generated programs only) needs tokenize.corpus.max_bytes, the corpus size"
            )
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "tokenize": {
            "vocab_size": 2048,
            "n_ctx": 128,
            "corpus": {"max_documents": 300, "max_bytes": 1_000_000},
            "generated": {"weight": 0.3, "documents_per_unit": 100},
            "tokenizer_train_bytes": 8_000_000,
            "documents_per_shard": 100,
        }
    },
    # 16 MB of corpus: 20% real code (a hash sample of the stdlib and site-packages), 80% generated simple
    # idioms (paper A.6); about 6.5M tokens, which 3000 steps of 32 x 64 tokens read about once. Measured
    # (RESULTS-issue10.md): at weight 0.8 instead of 0.5 the sparse model's test loss
    # falls from 0.36 to 0.16 on single_double_quote and from 0.59 to 0.27 on bracket_counting.
    # n_ctx 64 holds every task's prompts (they are fitted to the context) at half the step cost of 128.
    "tiny": {
        "tokenize": {
            "vocab_size": 2048,
            "n_ctx": 64,
            "corpus": {"max_bytes": 16_000_000},
            "generated": {"weight": 0.8},
        }
    },
    "small": {"tokenize": {"vocab_size": 2048, "n_ctx": 256}},
    "paper": {"tokenize": {"vocab_size": 2048, "n_ctx": 256}},
}
