"""The tokenize stage: one cell, corpus -> BPE tokenizer -> Arrow shards."""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..stage import Benchmark, Cell, Resources, Stage
from .config import PRESETS, TokenizeConfig


def tokenize_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    from .corpus import corpus_fingerprint

    # The corpus is an input too: its fingerprint keys the cell, so edited files re-tokenize.
    params = {
        **config.tokenize.model_dump(mode="json"),
        "corpus_fingerprint": corpus_fingerprint(config.tokenize.corpus.paths),
    }
    return [Cell("tokenize", "", params, resources=Resources(num_cpus=1))]


def run_tokenize_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_tokenize

    run_tokenize(ctx, TokenizeConfig.model_validate({k: v for k, v in params.items() if k != "corpus_fingerprint"}))


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
)

BENCHMARK = Benchmark(
    name="tokenize",
    help="Tokenize stage (parallel Ray units) vs one HF tokenizers process on the same files: MB/s, tokens/s, ratio.",
    run="sparsepipe.workers.tokenize.bench:measure",
    ray=True,
)
