"""The prune stage: each checkpoint x each task, the smallest circuit at the target loss.

A cell is "pretrain/tiny:bracket_counting"; with tune.enabled it runs the CARBS
loop of `tuning.py` (trials are Ray tasks), else one trial of `trial.py` with
the fixed hyperparameters.
"""

from __future__ import annotations

from typing import Any

from ..checkpoints import CHECKPOINT, select, selected_checkpoints
from ..context import WorkContext
from ..stage import Cell, CellRef, Resources, Stage, Upstream
from .config import PRESETS, PruneConfig, TuneConfig
from .result import cell_name

# Fields of PruneConfig that only select cells.
SELECTION_FIELDS = {"tasks", "checkpoints"}
# A tuned cell only orchestrates: its trials are Ray tasks that ask for their own CPUs and GPUs.
TUNED_CELL_CPUS = 0.25


def selected_tasks(config: Any) -> list[str]:
    from ...tasks.registry import task_names

    return select(config.prune.tasks, task_names(), "task", "`sparsepipe tasks list` shows the tasks")


def prune_cells(config: Any, upstream: Upstream) -> list[Cell]:
    tasks = selected_tasks(config)
    settings: dict[str, Any] = {"prune": config.prune.model_dump(mode="json", exclude=SELECTION_FIELDS)}
    resources = Resources(num_cpus=1)
    if config.tune.enabled:
        settings["tune"] = config.tune.model_dump(mode="json")
        resources = Resources(num_cpus=TUNED_CELL_CPUS)
    cells = []
    for ref in selected_checkpoints(config.prune.checkpoints, upstream):
        inputs = {"checkpoint": ref, "tokens": CellRef("tokenize"), "mean_cache": CellRef("mean_cache", str(ref))}
        for task in tasks:
            cells.append(Cell("prune", cell_name(str(ref), task), {"task": task, **settings}, inputs, resources))
    return cells


def run_prune_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    """A cell with "tune" params runs the CARBS loop; otherwise one trial with the fixed hyperparameters."""
    prune = PruneConfig.model_validate(params["prune"])
    if "tune" in params:
        from .tuning import run_tuning

        run_tuning(ctx, prune, TuneConfig.model_validate(params["tune"]), params["task"])
    else:
        from .worker import run_prune

        run_prune(ctx, prune, params["task"])


PRUNE = Stage(
    name="prune",
    version="1",
    deps=("tokenize", "mean_cache"),
    dep_kinds=(CHECKPOINT,),
    cells=prune_cells,
    run="sparsepipe.workers.prune.stage:run_prune_cell",
    description="each checkpoint x each task: the smallest circuit at the target loss (CARBS-tuned when tune.enabled)",
    matrix=True,
    config={"prune": PruneConfig, "tune": TuneConfig},
    presets=PRESETS,
    records=("trials.jsonl",),  # each trial's start, end, host and node
    provides=("circuit",),  # `sparsepipe.open_store(...).load_circuit` (workers/prune/runnable.py)
    shortcuts={"tasks": "prune.tasks", "checkpoints": "prune.checkpoints"},
    estimate="sparsepipe.workers.prune.estimate:estimate_prune_cell",
)
