"""The stage registry: what each stage runs, on which cells, with which inputs.

Cells and their names:
    tokenize                    one cell
    pretrain                    one cell per model variant: "tiny", "l0_0.0156_afrac_0.25", ...
    dense                       one cell (absent when dense.enabled is false)
    bridges                     one cell per bridges variant (absent unless bridges.enabled): workers/bridges/
    mean_cache                  one cell per checkpoint: "pretrain/tiny", "dense", "bridges/base"
    prune                       one cell per checkpoint x task: "pretrain/tiny:bracket_counting"
                                (a CARBS tuning loop when tune.enabled, see workers/tune.py)
    report                      one cell over every prune cell (and the bridges cells' intervention curves)

Each `run_*` adapter executes in the worker process: it validates the cell's
params into the stage's config model and calls the worker function.
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Any

from .config import ConfigError, PipelineConfig, PruneConfig, TokenizeConfig, TrainConfig, TuneConfig
from .dag import Cell, CellRef, Registry, Resources, Stage
from ..workers.bridges.stage import BRIDGES
from ..workers.context import WorkContext

MODEL_CODE = ("sparsepipe.workers.nn", "sparsepipe.kernels")
TASK_CODE = ("sparsepipe.tasks",)
# Fields of PruneConfig that shape the mean-ablation cache; the rest do not invalidate it.
MEAN_CACHE_FIELDS = ("mean_cache_batches", "mean_cache_batch_size", "seed")
# Fields of PruneConfig that only select cells.
SELECTION_FIELDS = {"tasks", "checkpoints"}


# ------------------------------------------------------------------ tokenize


def _tokenize_cells(config: PipelineConfig, upstream: dict[str, list[Cell]]) -> list[Cell]:
    from ..workers.corpus import corpus_fingerprint

    # The corpus is an input too: its fingerprint keys the cell, so edited files re-tokenize.
    params = {**config.tokenize.model_dump(mode="json"), "corpus_fingerprint": corpus_fingerprint(config.tokenize.corpus.paths)}
    return [Cell("tokenize", "", params, resources=Resources(num_cpus=1))]


def run_tokenize_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from ..workers.tokenize import run_tokenize

    run_tokenize(ctx, TokenizeConfig.model_validate({k: v for k, v in params.items() if k != "corpus_fingerprint"}))


# ------------------------------------------------------------------ training


def _trainer_resources(config: PipelineConfig) -> Resources:
    return Resources(num_cpus=config.execution.cpus_per_trainer, num_gpus=config.execution.gpus_per_trainer, actor=True)


def _pretrain_cells(config: PipelineConfig, upstream: dict[str, list[Cell]]) -> list[Cell]:
    return [
        Cell("pretrain", variant.name, config.pretrain.variant_train_config(variant).model_dump(mode="json"), {"tokens": CellRef("tokenize")}, _trainer_resources(config))
        for variant in config.pretrain.variants
    ]


def _dense_cells(config: PipelineConfig, upstream: dict[str, list[Cell]]) -> list[Cell]:
    if not config.dense.enabled:
        return []
    return [Cell("dense", "", config.dense.train.model_dump(mode="json"), {"tokens": CellRef("tokenize")}, _trainer_resources(config))]


def run_train_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from ..workers.pretrain import run_pretrain

    run_pretrain(ctx, TrainConfig.model_validate(params), tokens_input="tokens")


# ------------------------------------------------------------------- pruning

CHECKPOINT_STAGES = ("pretrain", "dense", "bridges")


def _selected(patterns: list[str], names: list[str], what: str, hint: str) -> list[str]:
    if "all" in patterns:
        return names
    chosen = []
    for pattern in patterns:
        matches = [n for n in names if fnmatch(n, pattern) or n.split("/")[0] == pattern]
        if not matches:
            raise ConfigError(f"{what} {pattern!r} matches nothing; {hint}: {', '.join(names) or '(none)'}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def selected_checkpoints(config: PipelineConfig, upstream: dict[str, list[Cell]]) -> list[CellRef]:
    refs = {str(c.ref): c.ref for stage in CHECKPOINT_STAGES for c in upstream.get(stage, [])}
    return [refs[name] for name in _selected(config.prune.checkpoints, list(refs), "checkpoint", "the checkpoints of this config are")]


def selected_tasks(config: PipelineConfig) -> list[str]:
    from ..tasks.registry import task_names

    return _selected(config.prune.tasks, task_names(), "task", "`sparsepipe tasks list` shows the tasks")


def _mean_cache_cells(config: PipelineConfig, upstream: dict[str, list[Cell]]) -> list[Cell]:
    params = {field: getattr(config.prune, field) for field in MEAN_CACHE_FIELDS}
    return [
        Cell("mean_cache", str(ref), params, {"checkpoint": ref, "tokens": CellRef("tokenize")}, Resources(num_cpus=1))
        for ref in selected_checkpoints(config, upstream)
    ]


def run_mean_cache_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from ..workers.mean_cache import run_mean_cache

    run_mean_cache(ctx, PruneConfig.model_validate(params))


# A tuned cell only orchestrates: its trials are Ray tasks that ask for their own CPUs and GPUs.
TUNED_CELL_CPUS = 0.25


def _prune_cells(config: PipelineConfig, upstream: dict[str, list[Cell]]) -> list[Cell]:
    tasks = selected_tasks(config)
    settings: dict[str, Any] = {"prune": config.prune.model_dump(mode="json", exclude=SELECTION_FIELDS)}
    resources = Resources(num_cpus=1)
    if config.tune.enabled:
        settings["tune"] = config.tune.model_dump(mode="json")
        resources = Resources(num_cpus=TUNED_CELL_CPUS)
    cells = []
    for ref in selected_checkpoints(config, upstream):
        inputs = {"checkpoint": ref, "tokens": CellRef("tokenize"), "mean_cache": CellRef("mean_cache", str(ref))}
        for task in tasks:
            cells.append(Cell("prune", f"{str(ref)}:{task}", {"task": task, **settings}, inputs, resources))
    return cells


def run_prune_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    """A cell with "tune" params runs the CARBS loop; otherwise one trial with the fixed hyperparameters."""
    prune = PruneConfig.model_validate(params["prune"])
    if "tune" in params:
        from ..workers.tune import run_tuning

        run_tuning(ctx, prune, TuneConfig.model_validate(params["tune"]), params["task"])
    else:
        from ..workers.prune import run_prune

        run_prune(ctx, prune, params["task"])


# -------------------------------------------------------------------- report


def _report_cells(config: PipelineConfig, upstream: dict[str, list[Cell]]) -> list[Cell]:
    pruned = upstream.get("prune", [])
    if not config.report.enabled or not pruned:
        return []
    bridged = {str(cell.ref): cell.ref for cell in upstream.get("bridges", [])}  # their intervention curves
    return [Cell("report", "", {}, {**{cell.cell: cell.ref for cell in pruned}, **bridged}, Resources(num_cpus=1))]


def run_report_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from ..workers.report import run_report

    run_report(ctx)


# ------------------------------------------------------------------ registry

TOKENIZE = Stage(
    name="tokenize",
    version="1",
    deps=(),
    code=("sparsepipe.workers.tokenize", "sparsepipe.workers.corpus", "sparsepipe.workers.shards"),
    cells=_tokenize_cells,
    run="sparsepipe.pipeline.stages:run_tokenize_cell",
    description="corpus -> BPE tokenizer -> Arrow shards",
)
TRAIN_CODE = ("sparsepipe.workers.pretrain", "sparsepipe.workers.data", "sparsepipe.workers.shards", "sparsepipe.workers.bigram_baseline", "sparsepipe.workers.plots", *MODEL_CODE)
PRETRAIN = Stage(
    name="pretrain",
    version="1",
    deps=("tokenize",),
    code=TRAIN_CODE,
    cells=_pretrain_cells,
    run="sparsepipe.pipeline.stages:run_train_cell",
    description="weight-sparse models, one cell per variant",
    matrix=True,
)
DENSE = Stage(
    name="dense",
    version="1",
    deps=("tokenize",),
    code=TRAIN_CODE,
    cells=_dense_cells,
    run="sparsepipe.pipeline.stages:run_train_cell",
    description="the dense baseline (same loop, sparsity off)",
)
MEAN_CACHE = Stage(
    name="mean_cache",
    version="1",
    deps=("tokenize", "pretrain", "dense", "bridges"),
    code=("sparsepipe.workers.mean_cache", "sparsepipe.workers.data", "sparsepipe.workers.shards", *MODEL_CODE),
    cells=_mean_cache_cells,
    run="sparsepipe.pipeline.stages:run_mean_cache_cell",
    description="mean activations over the pretraining distribution, per checkpoint",
    matrix=True,
)
TUNE_CODE = (
    "sparsepipe.workers.tune",
    "sparsepipe.workers.tune_trial",
    "sparsepipe.workers.tune_report",
    "sparsepipe.workers.carbs",
    "sparsepipe.workers.carbs_space",
    "sparsepipe.workers.carbs_gp",
    "sparsepipe.workers.carbs_pareto",
    "sparsepipe.workers.carbs_surrogate",
)
PRUNE = Stage(
    name="prune",
    version="1",
    deps=("tokenize", "pretrain", "dense", "bridges", "mean_cache"),
    code=("sparsepipe.workers.prune", "sparsepipe.workers.mean_cache", "sparsepipe.workers.plots", *TUNE_CODE, *MODEL_CODE, *TASK_CODE),
    cells=_prune_cells,
    run="sparsepipe.pipeline.stages:run_prune_cell",
    description="each checkpoint x each task: the smallest circuit at the target loss (CARBS-tuned when tune.enabled)",
    matrix=True,
)


REPORT = Stage(
    name="report",
    version="1",
    deps=("prune", "bridges"),
    code=("sparsepipe.workers.report",),
    cells=_report_cells,
    run="sparsepipe.pipeline.stages:run_report_cell",
    description="every circuit in one table, figure and browsable index",
)


def build_registry() -> Registry:
    return Registry([TOKENIZE, PRETRAIN, DENSE, BRIDGES, MEAN_CACHE, PRUNE, REPORT])


REGISTRY = build_registry()
