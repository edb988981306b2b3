"""The matched_dense stage: one cell per sparse model (pretrain cell), its dense checkpoint at matched loss.

Which checkpoint matches is known only after both trained, so the choice is this stage's work, and its
artifact is that checkpoint: mean_cache and prune treat it like any other ("matched_dense/<variant>").
"""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..stage import Cell, Resources, Stage
from .config import SPARSE_INPUT, MatchedConfig


def matched_cells(config: Any, upstream: dict[str, list[Cell]]) -> list[Cell]:
    dense = upstream.get("dense", [])
    if not config.matched.enabled or not dense:
        return []
    inputs = {str(cell.ref): cell.ref for cell in dense}  # "dense", "dense/<variant>"
    return [
        Cell(
            "matched_dense",
            sparse.cell,
            {"tolerance": config.matched.tolerance},
            {SPARSE_INPUT: sparse.ref, **inputs},
            Resources(num_cpus=1),
        )
        for sparse in upstream.get("pretrain", [])
    ]


def run_matched_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    from .worker import run_matched

    run_matched(ctx, params["tolerance"])


MATCHED_DENSE = Stage(
    name="matched_dense",
    version="1",
    deps=("pretrain", "dense"),
    cells=matched_cells,
    run="sparsepipe.workers.matched.stage:run_matched_cell",
    description="per sparse model, the dense checkpoint nearest its pretraining val loss (Fig. 2 at matched loss)",
    matrix=True,
    config={"matched": MatchedConfig},
    provides=("checkpoint",),
)
