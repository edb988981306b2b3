"""Running a plan without Ray: every cell in this process, one after another.

`sparsepipe run` uses it where Ray is not installed, e.g. a GPU machine's stock image that holds torch and
Triton but not Ray (infra/gpu_check.sh runs there). Cells run in plan order (upstream first), each through
the same `execute_unit` a Ray worker runs, so artifacts, keys and manifests are the same; units a cell
submits (prune's CARBS trials) run one after another. Data-parallel training (execution.train_workers > 1)
needs Ray Train and is refused before anything runs.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any, Callable

from ..workers.stage import ConfigError
from .config import PipelineConfig
from .dag import HIT, CellPlan, Planner, Registry
from .execute import execute_unit
from .oom import failure_describer
from .runner import CellOutcome, Runner, RunReport
from .store import Manifest, Store


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def local_submit(
    calls: list[tuple[Callable[..., Any], tuple, dict[str, Any]]], on_result: Callable[[int, Any], None] | None = None
) -> list[Any]:
    """`ctx.submit` without Ray: the calls in order, in this process."""
    results = []
    for number, (function, args, _resources) in enumerate(calls):
        results.append(function(*args))
        if on_result is not None:
            on_result(number, results[-1])
    return results


def run_in_process(
    registry: Registry,
    store: Store,
    config: PipelineConfig,
    targets: list[str],
    forced: set[str],
    verify_inputs: bool = False,
) -> RunReport:
    """Plan, then run every cell that is not committed; a failed cell's downstream cells are skipped."""
    import torch

    planner = Planner(registry, store, verify_inputs=verify_inputs)
    static = planner.plan(config, targets, forced)
    wide = [p.cell.ref for p in static if p.status != HIT and p.cell.resources.workers > 1]
    if wide:
        raise ConfigError(
            f"{', '.join(map(str, wide))}: execution.train_workers > 1 trains on Ray Train workers, and Ray is not "
            "installed here; set execution.train_workers=1 or install ray"
        )
    report = RunReport()
    committed: dict[Any, Manifest] = {p.cell.ref: p.manifest for p in static if p.status == HIT and p.manifest}
    report.outcomes.extend(CellOutcome(p, manifest=p.manifest) for p in static if p.status == HIT)
    builder = Runner(registry, store, config, verify_inputs=verify_inputs)
    has_gpus = torch.cuda.is_available()
    failed: set[Any] = set()
    describe = failure_describer(registry, config, static)
    for static_plan in static:
        cell = static_plan.cell
        if static_plan.status == HIT:
            continue
        dead = [ref for ref in cell.inputs.values() if ref in failed]
        if dead:
            failed.add(cell.ref)
            outcome = CellOutcome(CellPlan(cell, "RUN", "upstream failed"))
            outcome.skipped_because = f"upstream {', '.join(map(str, dead))} failed"
            report.outcomes.append(outcome)
            continue
        plan = planner.plan_cell(cell, committed, set(), forced)
        if plan.status == HIT and plan.manifest is not None:
            committed[cell.ref] = plan.manifest
            report.outcomes.append(CellOutcome(plan, manifest=plan.manifest))
            continue
        started = time.time()
        outcome = CellOutcome(plan)
        try:
            raw, path, _ = execute_unit(store.spec, builder._request(plan, committed, has_gpus), submit=local_submit)
            outcome.manifest = Manifest(raw=raw, path=path)
            committed[cell.ref] = outcome.manifest
        except Exception as error:  # one cell's failure, reported like a Ray worker's
            oom = describe(plan, error)
            outcome.error, outcome.out_of_memory = oom or f"{type(error).__name__}: {error}", oom is not None
            failed.add(cell.ref)
        outcome.seconds = time.time() - started
        report.outcomes.append(outcome)
    return report
