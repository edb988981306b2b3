"""The pretrain and dense stages: one training loop, a cell per sparse model variant and one dense cell."""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..nn.config import TrainConfig
from ..stage import Benchmark, Cell, CellRef, Resources, Stage
from .config import DENSE_PRESETS, PRETRAIN_PRESETS, DenseConfig, PretrainConfig, apply_variant


def trainer_resources(config: Any) -> Resources:
    """A training cell's actor and its execution.train_workers Ray Train workers (see parallel.py)."""
    execution = config.execution
    return Resources(
        num_cpus=execution.cpus_per_trainer,
        num_gpus=execution.gpus_per_trainer,
        actor=True,
        workers=execution.train_workers,
    )


def pretrain_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    return [
        Cell(
            "pretrain",
            variant.name,
            config.pretrain.variant_train_config(variant).model_dump(mode="json"),
            {"tokens": CellRef("tokenize")},
            trainer_resources(config),
        )
        for variant in config.pretrain.variants
    ]


def dense_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    """The base dense model (cell "", what bridges use) and one cell per `dense.variants` entry."""
    if not config.dense.enabled:
        return []
    trains = [("", config.dense.train)]
    trains += [(variant.name, apply_variant(config.dense.train, variant)) for variant in config.dense.variants]
    return [
        Cell("dense", name, train.model_dump(mode="json"), {"tokens": CellRef("tokenize")}, trainer_resources(config))
        for name, train in trains
    ]


def _against_the_tokens(config: Any, prefix: str, train: TrainConfig) -> list[str]:
    """A model trains on tokenize's rows: the same n_ctx, and room for every token id."""
    problems = []
    model, tokenize = train.model, config.tokenize
    if model.n_ctx != tokenize.n_ctx:
        problems.append(
            f"{prefix}.model.n_ctx={model.n_ctx} but tokenize.n_ctx={tokenize.n_ctx}: the model trains on the token "
            "rows, so both must be equal"
        )
    if model.vocab_size is not None and model.vocab_size < tokenize.vocab_size:
        problems.append(
            f"{prefix}.model.vocab_size={model.vocab_size} is smaller than tokenize.vocab_size="
            f"{tokenize.vocab_size}; leave it unset (taken from the tokenizer) or raise it"
        )
    return problems


def batch_split_problems(config: Any, prefix: str, train: TrainConfig) -> list[str]:
    """Each of execution.train_workers ranks trains on batch_size / train_workers rows, in `microbatches` equal
    chunks (parallel.RankSlice, Trainer.accumulate_gradients): the batch must split into both evenly."""
    workers, microbatches = config.execution.train_workers, train.microbatches
    if train.batch_size % (workers * microbatches) == 0:
        return []
    return [
        f"{prefix}.batch_size={train.batch_size} does not split evenly over execution.train_workers={workers} "
        f"ranks of {prefix}.microbatches={microbatches} microbatches each; make batch_size a multiple of "
        f"{workers * microbatches}"
    ]


def check_pretrain(config: Any) -> list[str]:
    train = config.pretrain.train
    return _against_the_tokens(config, "pretrain.train", train) + batch_split_problems(config, "pretrain.train", train)


def check_dense(config: Any) -> list[str]:
    if not config.dense.enabled:
        return []
    train = config.dense.train
    return _against_the_tokens(config, "dense.train", train) + batch_split_problems(config, "dense.train", train)


def run_train_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_pretrain

    run_pretrain(ctx, TrainConfig.model_validate(params), tokens_input="tokens")


PRETRAIN = Stage(
    name="pretrain",
    version="1",
    deps=("tokenize",),
    cells=pretrain_cells,
    run="sparsepipe.workers.train.stage:run_train_cell",
    description="weight-sparse models, one cell per variant",
    matrix=True,
    config={"pretrain": PretrainConfig},
    presets=PRETRAIN_PRESETS,
    provides=("checkpoint",),
    checks=(check_pretrain,),
    estimate="sparsepipe.workers.train.estimate:estimate_train_cell",
)
DENSE = Stage(
    name="dense",
    version="1",
    deps=("tokenize",),
    cells=dense_cells,
    run="sparsepipe.workers.train.stage:run_train_cell",
    description="the dense baseline (same loop, sparsity off)",
    config={"dense": DenseConfig},
    presets=DENSE_PRESETS,
    provides=("checkpoint",),
    checks=(check_dense,),
    estimate="sparsepipe.workers.train.estimate:estimate_train_cell",
)

BENCHMARK = Benchmark(
    name="train",
    help=(
        "AbsTopK and weight top-k kernels vs torch.topk, and a sparse training step vs a dense one; with "
        "--workers, also data-parallel training throughput on Ray Train vs the in-process cell."
    ),
    run="sparsepipe.workers.train.bench:measure",
    takes_workers=True,
)
