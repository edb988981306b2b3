"""The tokenize stage: one cell, corpus -> BPE tokenizer -> Arrow shards."""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..stage import Benchmark, Cell, ConfigError, Resources, Stage
from .config import CORPUS_RECORD, PRESETS, TokenizeConfig


def tokenize_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    from .corpus import corpus_files, corpus_fingerprint
    from .given import given_fingerprint

    corpus = config.tokenize.corpus
    files = corpus_files(corpus.paths, corpus.site_packages)
    if config.tokenize.generated.weight < 1 and not files:
        searched = corpus.paths or "the standard library" + (" and site-packages" if corpus.site_packages else "")
        raise ConfigError(
            f"tokenize.corpus.paths: the corpus is empty (no file found in {searched}); "
            "point it at Python files or set tokenize.generated.weight=1 with tokenize.corpus.max_bytes"
        )

    # The corpus is an input too: its fingerprint keys the cell, so edited files re-tokenize.
    params = {
        **config.tokenize.model_dump(mode="json", exclude={"tokenizer"}),
        "corpus_fingerprint": corpus_fingerprint(config.tokenize.corpus.paths, files),
    }
    if config.tokenize.tokenizer is not None:  # a given tokenizer enters the key by content
        params["tokenizer"] = config.tokenize.tokenizer
        params["tokenizer_fingerprint"] = given_fingerprint(config.tokenize.tokenizer)
    return [Cell("tokenize", "", params, resources=Resources(num_cpus=1))]


def run_tokenize_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_tokenize

    fingerprints = ("corpus_fingerprint", "tokenizer_fingerprint")
    run_tokenize(ctx, TokenizeConfig.model_validate({k: v for k, v in params.items() if k not in fingerprints}))


TOKENIZE = Stage(
    name="tokenize",
    version="1",
    deps=(),
    cells=tokenize_cells,
    run="sparsepipe.workers.tokenize.stage:run_tokenize_cell",
    description="corpus -> BPE tokenizer -> Arrow shards",
    config={"tokenize": TokenizeConfig},
    presets=PRESETS,
    provides=("tokenizer",),
    records=(CORPUS_RECORD,),  # the corpus digest and the environment it was read in
    estimate="sparsepipe.workers.tokenize.estimate:estimate_tokenize_cell",
)

BENCHMARK = Benchmark(
    name="tokenize",
    help="Tokenize stage (parallel Ray units) vs one HF tokenizers process on the same files: MB/s, tokens/s, ratio.",
    run="sparsepipe.workers.tokenize.bench:measure",
    ray=True,
)
