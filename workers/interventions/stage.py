"""The interventions stage: Fig. 9 from a pruned circuit, one cell per bridges variant x intervention task.

Paper §3.3: "we identify the minimal sparse circuit [...] We manually choose a node from this circuit which seems to
be important for the task based on ablations". A cell "bridges/<variant>:<task>" runs after that variant's prune
cell of the task: it ranks the circuit's read nodes by single-node ablation and steers the frozen dense model
through the top one (`worker.py`). Settings are `bridges.interventions`; a task is steered only where its prune
cell exists (`prune.tasks` and `prune.checkpoints` select it).
"""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..prune.result import cell_name
from ..stage import Cell, CellRef, Resources, Stage


def intervention_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    if not config.bridges.enabled:
        return []
    settings = config.bridges.interventions
    pruned = {cell.cell: cell for cell in upstream.get("prune", [])}
    cells = []
    for bridged in upstream.get("bridges", []):
        for task in settings.tasks:
            circuit = pruned.get(cell_name(str(bridged.ref), task))
            if circuit is None:
                continue
            params = {
                "task": task,
                "interventions": settings.model_dump(mode="json"),
                "reference_batch_size": config.bridges.train.batch_size,
            }
            inputs = {
                "tokens": CellRef("tokenize"),
                "dense": CellRef("dense"),
                "bridges": bridged.ref,
                "circuit": circuit.ref,
                "mean_cache": CellRef("mean_cache", str(bridged.ref)),
            }
            cells.append(
                Cell("interventions", cell_name(str(bridged.ref), task), params, inputs, Resources(num_cpus=1))
            )
    return cells


def run_interventions_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from ..bridges.config import InterventionConfig
    from .worker import run_circuit_intervention

    settings = InterventionConfig.model_validate(params["interventions"])
    run_circuit_intervention(ctx, params["task"], settings, params["reference_batch_size"])


INTERVENTIONS = Stage(
    name="interventions",
    version="1",
    deps=("tokenize", "dense", "bridges", "mean_cache", "prune"),
    cells=intervention_cells,
    run="sparsepipe.workers.interventions.stage:run_interventions_cell",
    description="Fig. 9 from the bridged model's circuit: steer the dense model through its most important read node",
    matrix=True,
)
