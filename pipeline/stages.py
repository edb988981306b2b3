"""The stage registry: what each stage runs, on which cells, with which inputs.

Each `run_*` adapter executes in the worker process: it validates the cell's
params into the stage's config model and calls the worker function.
"""

from __future__ import annotations

from typing import Any

from .config import PipelineConfig, TokenizeConfig
from .dag import Cell, Registry, Resources, Stage
from ..workers.context import WorkContext


def _tokenize_cells(config: PipelineConfig, upstream: dict[str, list[Cell]]) -> list[Cell]:
    from ..workers.corpus import corpus_fingerprint

    # The corpus is an input too: its fingerprint keys the cell, so edited files re-tokenize.
    params = {**config.tokenize.model_dump(mode="json"), "corpus_fingerprint": corpus_fingerprint(config.tokenize.corpus.paths)}
    return [Cell("tokenize", "", params, resources=Resources(num_cpus=1))]


def run_tokenize_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from ..workers.tokenize import run_tokenize

    run_tokenize(ctx, TokenizeConfig.model_validate({k: v for k, v in params.items() if k != "corpus_fingerprint"}))


TOKENIZE = Stage(
    name="tokenize",
    version="1",
    deps=(),
    code=("sparsepipe.workers.tokenize", "sparsepipe.workers.corpus", "sparsepipe.workers.data"),
    cells=_tokenize_cells,
    run="sparsepipe.pipeline.stages:run_tokenize_cell",
    description="corpus -> BPE tokenizer -> Arrow shards",
)


def build_registry() -> Registry:
    return Registry([TOKENIZE])


REGISTRY = build_registry()
