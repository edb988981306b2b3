"""A cell that runs out of GPU memory fails with one line: the cell, what it needed, what to change.

The memory figure is the cell's estimate (`plan --estimate`, workers/estimate.py) on a CUDA device; the
settings are the ones its stage names as lowering it. Nothing is committed for such a cell (a unit commits
only after its worker returns), so the store keeps exactly what it had.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from .dag import CellPlan, Registry
from .estimate import cell_costs, changes, needed


def is_out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, raised in this process or wrapped by Ray (its `cause`)."""
    torch = sys.modules.get("torch")
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if torch is not None and isinstance(current, torch.cuda.OutOfMemoryError):
            return True
        if type(current).__name__ == "OutOfMemoryError" and "CUDA out of memory" in str(current):
            return True  # Ray's copy of the worker's exception type
        current = getattr(current, "cause", None) or current.__cause__
    return False


def out_of_memory_line(plan: CellPlan, registry: Registry, config: Any, plans: list[CellPlan]) -> str:
    cost = cell_costs(registry, config, [*plans, plan], "cuda").get(plan.cell.ref)
    if cost is None:
        return f"{plan.cell.ref} ran out of GPU memory (no estimate for its stage): lower its batch size"
    return (
        f"{plan.cell.ref} ran out of GPU memory: it needs about {needed(cost)} by `sparsepipe plan --estimate`; "
        f"{changes(cost)}"
    )


def failure_describer(
    registry: Registry, config: Any, plans: list[CellPlan]
) -> Callable[[CellPlan, BaseException], str | None]:
    """plan, error -> the line a cell that ran out of GPU memory reports; None for any other error."""

    def describe(plan: CellPlan, error: BaseException) -> str | None:
        return out_of_memory_line(plan, registry, config, plans) if is_out_of_memory(error) else None

    return describe
