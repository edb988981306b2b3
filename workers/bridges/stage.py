"""The bridges Stage: one cell per `bridges.variants` entry, after dense and tokenize.

Cell "bridges/<variant>": params are the variant's full sparse training config and
the bridge settings; inputs are the token shards and the dense checkpoint. An
enabled config that cannot be built (no dense stage, or a sparse model whose
n_layer / n_ctx / vocab_size differs from the dense model's or the tokens') is a
ConfigError at plan time, naming the keys.

The bridged sparse model is a checkpoint (`provides`); mean_cache and prune list
this stage among their checkpoint stages, and the report reads its intervention curves.
"""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..nn.config import TrainConfig
from ..stage import Benchmark, Cell, CellRef, ConfigError, Stage
from ..train.stage import batch_split_problems, trainer_resources
from .config import PRESETS, BridgesConfig

# Fields of BridgesConfig that are not cell params (the variant's train config replaces `train`).
NOT_PARAMS = {"enabled", "variants", "train"}


def check_buildable(config: Any, train: TrainConfig, variant: str) -> None:
    where = f"bridges.variants[{variant!r}]"
    if not config.dense.enabled:
        raise ConfigError(
            "bridges.enabled is true but dense.enabled is false: bridges need the dense model; "
            "enable dense or disable bridges"
        )
    dense, sparse = config.dense.train.model, train.model
    problems = []
    if sparse.n_layer != dense.n_layer:
        problems.append(
            f"bridges.train.model.n_layer={sparse.n_layer} ({where}) != dense.train.model.n_layer={dense.n_layer}"
        )
    for owner, n_ctx in (("dense.train.model.n_ctx", dense.n_ctx), ("tokenize.n_ctx", config.tokenize.n_ctx)):
        if sparse.n_ctx != n_ctx:
            problems.append(f"bridges.train.model.n_ctx={sparse.n_ctx} != {owner}={n_ctx}")
    vocab = {"bridges.train.model.vocab_size": sparse.vocab_size, "dense.train.model.vocab_size": dense.vocab_size}
    vocab = {k: v if v is not None else config.tokenize.vocab_size for k, v in vocab.items()}
    if len(set(vocab.values())) > 1:
        problems.append(" != ".join(f"{k}={v}" for k, v in vocab.items()) + " (None means tokenize.vocab_size)")
    if problems:
        raise ConfigError("bridges.enabled is true but the bridges cannot be built: " + "; ".join(problems))


def bridges_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    if not config.bridges.enabled:
        return []
    settings = config.bridges.model_dump(mode="json", exclude=NOT_PARAMS)
    inputs = {"tokens": CellRef("tokenize"), "dense": CellRef("dense")}
    cells = []
    for variant in config.bridges.variants:
        train = config.bridges.variant_train_config(variant)
        check_buildable(config, train, variant.name)
        params = {"train": train.model_dump(mode="json"), **settings}
        cells.append(Cell("bridges", variant.name, params, inputs, trainer_resources(config)))
    return cells


def check_bridges(config: Any) -> list[str]:
    if not config.bridges.enabled:
        return []
    return batch_split_problems(config, "bridges.train", config.bridges.train)


def run_bridges_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_bridges

    run_bridges(ctx, BridgesConfig.model_validate(params))


BRIDGES = Stage(
    name="bridges",
    version="1",
    deps=("tokenize", "dense"),
    cells=bridges_cells,
    run="sparsepipe.workers.bridges.stage:run_bridges_cell",
    description="a weight-sparse model + bridges to the frozen dense model, one cell per variant; A.4 curves",
    matrix=True,
    config={"bridges": BridgesConfig},
    presets=PRESETS,
    provides=("checkpoint",),
    checks=(check_bridges,),
    estimate="sparsepipe.workers.bridges.estimate:estimate_bridges_cell",
)

BENCHMARK = Benchmark(
    name="bridges",
    help="A bridges training step (sparse model, frozen dense model, bridges, hybrid passes) vs a sparse pretrain one.",
    run="sparsepipe.workers.bridges.bench:measure",
)
