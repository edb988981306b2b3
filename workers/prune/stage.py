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
SELECTION_FIELDS = {"tasks", "checkpoints", "controls", "control_tasks"}
TASK_TWIN_CONTROLS = ("flipped", "shuffled")  # controls that are task twins (`tasks/variants.py`)
# A tuned cell only orchestrates: its trials are Ray tasks that ask for their own CPUs and GPUs.
TUNED_CELL_CPUS = 0.25


def selected_tasks(config: Any) -> list[str]:
    from ...tasks.registry import task_names

    return select(config.prune.tasks, task_names(), "task", "`sparsepipe tasks list` shows the tasks")


def control_tasks(config: Any, tasks: list[str]) -> tuple[list[str], list[str]]:
    """(the pruned tasks the controls run on, their twins the controls name), e.g. (["var_if"],
    ["var_if__flipped", "var_if__shuffled"])."""
    from ...tasks.registry import task_names
    from ...tasks.variants import twin_name

    prune = config.prune
    if not prune.controls:
        return [], []
    # Named among all tasks (a typo is an error), run on those that are pruned (a narrower --tasks skips the rest).
    named = select(prune.control_tasks, task_names(), "control task", "`sparsepipe tasks list` shows the tasks")
    chosen = [task for task in named if task in tasks]
    twins = [twin_name(task, kind) for task in chosen for kind in TASK_TWIN_CONTROLS if kind in prune.controls]
    return chosen, twins


def prune_cells(config: Any, upstream: Upstream) -> list[Cell]:
    tasks = selected_tasks(config)
    random_init_tasks, twins = control_tasks(config, tasks)
    controls = {str(c.ref) for c in upstream.get("random_init", [])}
    settings: dict[str, Any] = {"prune": config.prune.model_dump(mode="json", exclude=SELECTION_FIELDS)}
    resources = Resources(num_cpus=1)
    if config.tune.enabled:
        settings["tune"] = config.tune.model_dump(mode="json")
        resources = Resources(num_cpus=TUNED_CELL_CPUS)
    cells = []
    for ref in selected_checkpoints(config.prune.checkpoints, upstream):
        inputs = {"checkpoint": ref, "tokens": CellRef("tokenize"), "mean_cache": CellRef("mean_cache", str(ref))}
        # A random-init control is pruned on the control tasks; a trained checkpoint on the tasks and their twins.
        for task in random_init_tasks if str(ref) in controls else tasks + twins:
            cell_settings = control_settings(settings) if str(ref) in controls or task in twins else settings
            cells.append(Cell("prune", cell_name(str(ref), task), {"task": task, **cell_settings}, inputs, resources))
    return cells


def control_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A control cell's params: the same pruning and CARBS budget, one mask seed and no binarization. Its
    evidence is whether that pruning reaches the target (`report/verdict.py`, controls_clear); the seed spread
    and the binarized losses describe a circuit to read, which a control is not."""
    return {**settings, "prune": {**settings["prune"], "seeds": 1, "binarize_pairs": 0}}


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
