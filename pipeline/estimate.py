"""`sparsepipe plan --estimate`: what each cell to run costs on a named device, and whether it fits.

Each stage's `Stage.estimate` ("module:function", workers/estimate.py) gives a cell's FLOPs and memory;
this module turns them into seconds on a device of pipeline/devices.py and a total for the run. A cell's
time is its FLOPs at the device's peak x efficiency plus its memory traffic at the device's bandwidth
(cells that stay on CPU cores, such as prune trials that ask for no GPU, are timed on those cores). The
run's total is the longest of: the critical path through the cells' inputs, the GPU work spread over
the run's GPUs (execution.train_workers of them), the CPU work spread over the host's cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..workers.estimate import CellCost
from .dag import HIT, CellPlan, Registry
from .devices import Device, cpu
from .execute import resolve_function

GB = 1e9
# What every cell costs besides its work: a Ray worker's start, torch's import, the inputs' checks, the outputs'
# plots and the commit. Fitted to `sparsepipe run full --preset smoke` from an empty store, whose work is
# seconds: 127 s for 10 cells at load <= 20 (RESULTS-issue10.md, "Tests"), five of them in a chain.
CELL_OVERHEAD_S = 20.0


@dataclass
class CellEstimate:
    plan: CellPlan
    cost: CellCost | None
    where: str  # "gpu", "cpu" or "" (no estimate)
    seconds: float  # one run of the cell, its own parallelism and CELL_OVERHEAD_S included
    busy_seconds: float  # the same, times the devices or cores it holds

    @property
    def label(self) -> str:
        return str(self.plan.cell.ref)


@dataclass
class RunEstimate:
    device: Device
    cells: list[CellEstimate]
    critical_path_s: float
    gpu_s: float  # GPU work over the run's GPUs
    cpu_s: float  # CPU work over the host's cores
    gpus: int
    cores: int
    skipped: int  # HIT cells, not estimated

    @property
    def total_s(self) -> float:
        return max(self.critical_path_s, self.gpu_s, self.cpu_s)

    def too_big(self) -> list[str]:
        """One line per kind of cell that cannot fit the device's memory (cells with the same problem, e.g. one
        checkpoint's prune cells, share a line), naming what it needs and what to change."""
        problems: dict[str, list[str]] = {}
        for item in self.cells:
            cost = item.cost
            if cost is None:
                continue
            memory, where = self._memory_of(item, cost)
            if cost.memory_bytes > memory:
                problem = f"needs {needed(cost)} but {where} has {memory / GB:.1f} GB: {changes(cost)}"
                problems.setdefault(problem, []).append(item.label)
        return [
            f"{labels[0]}{f' (and {len(labels) - 1} more cells like it)' if len(labels) > 1 else ''} {problem}"
            for problem, labels in problems.items()
        ]

    def _memory_of(self, item: CellEstimate, cost: CellCost) -> tuple[float, str]:
        if item.where == "gpu":
            if cost.device_share < 1:
                return self.device.memory * cost.device_share, f"its {cost.device_share:g} of one {self.device.name}"
            return self.device.memory, f"one {self.device.name}"
        host = host_of(self.device)
        concurrent = max(1, min(cost.concurrent, self.cores))
        where = "the host" if self.device.kind == "cuda" else "this machine"
        if concurrent == 1:
            return host.memory, f"{where}'s memory"
        return host.memory / concurrent, f"each of its {concurrent} concurrent units' share of {where}'s memory"

    def as_json(self) -> dict[str, Any]:
        return {
            "device": self.device.name,
            "efficiency": self.device.efficiency,
            "efficiency_measured": self.device.measured,
            "gpus": self.gpus,
            "cores": self.cores,
            "cells": [
                {
                    "stage": c.plan.cell.stage,
                    "cell": c.plan.cell.cell,
                    "status": c.plan.status,
                    "on": c.where or None,
                    "flops": c.cost.flops if c.cost else None,
                    "param_bytes": c.cost.param_bytes if c.cost else None,
                    "optimizer_bytes": c.cost.optimizer_bytes if c.cost else None,
                    "activation_bytes": c.cost.activation_bytes if c.cost else None,
                    "memory_bytes": c.cost.memory_bytes if c.cost else None,
                    "seconds": round(c.seconds, 3),
                    "note": c.cost.note if c.cost else "no estimate for this stage",
                }
                for c in self.cells
            ],
            "critical_path_s": round(self.critical_path_s, 3),
            "gpu_s": round(self.gpu_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "total_s": round(self.total_s, 3),
            "skipped_hits": self.skipped,
            "does_not_fit": self.too_big(),
        }


def changes(cost: CellCost) -> str:
    return ", or ".join(cost.reduce) if cost.reduce else "lower its batch size"


def needed(cost: CellCost) -> str:
    return (
        f"{cost.memory_bytes / GB:.2f} GB (parameters {cost.param_bytes / GB:.2f}, optimizer "
        f"{cost.optimizer_bytes / GB:.2f}, activations {cost.activation_bytes / GB:.2f})"
    )


def cell_costs(registry: Registry, config: Any, plans: list[CellPlan], device_type: str) -> dict[Any, CellCost | None]:
    """Every planned cell's CellCost (None where its stage declares no estimate or cannot tell yet)."""
    cells = {p.cell.ref: p.cell for p in plans}
    costs: dict[Any, CellCost | None] = {}
    for plan in plans:
        estimator = registry[plan.cell.stage].estimate
        costs[plan.cell.ref] = resolve_function(estimator)(plan.cell, config, cells, device_type) if estimator else None
    return costs


def _time(cost: CellCost, device: Device, host: Device, gpus: int) -> tuple[str, float, float]:
    """(where, seconds, busy seconds) of one cell."""
    if cost.accelerated and device.kind == "cuda":
        share = min(cost.workers, gpus)
        seconds = cost.flops / (device.flops_per_s(cost.bf16) * share) + cost.bytes_moved / (device.bandwidth * share)
        return "gpu", seconds, seconds * share
    lanes = max(1, min(max(cost.workers, cost.concurrent), host.units))
    core_rate = host.fp32_flops * host.efficiency
    seconds = (cost.flops / core_rate + cost.bytes_moved / host.bandwidth + cost.cpu_seconds) / lanes
    return "cpu", seconds, seconds * lanes


def host_of(device: Device) -> Device:
    """The CPU cores beside `device` (this machine's when it is the CPU), timed as this machine's cores."""
    if device.kind == "cpu":
        return device
    return Device(**{**cpu().__dict__, "units": device.host_cores, "memory": device.host_memory})


def estimate_run(registry: Registry, config: Any, plans: list[CellPlan], device: Device) -> RunEstimate:
    """The estimate of every cell `plans` will run on `device`, in plan order, and of the whole run."""
    host = host_of(device)
    gpus = max(1, config.execution.train_workers) if device.kind == "cuda" else 0
    todo = [p for p in plans if p.status != HIT]
    costs = cell_costs(registry, config, plans, device.kind)
    finish: dict[Any, float] = {}
    estimates, gpu_busy, cpu_busy = [], 0.0, 0.0
    for plan in todo:  # plans come in dependency order
        cost = costs[plan.cell.ref]
        where, seconds, busy = _time(cost, device, host, gpus) if cost is not None else ("", 0.0, 0.0)
        if where == "gpu":
            gpu_busy += busy
        else:
            cpu_busy += busy
        seconds += CELL_OVERHEAD_S
        cpu_busy += CELL_OVERHEAD_S
        start = max((finish.get(ref, 0.0) for ref in plan.cell.inputs.values()), default=0.0)
        finish[plan.cell.ref] = start + seconds
        estimates.append(CellEstimate(plan, cost, where, seconds, busy))
    return RunEstimate(
        device=device,
        cells=estimates,
        critical_path_s=max(finish.values(), default=0.0),
        gpu_s=gpu_busy / gpus if gpus else 0.0,
        cpu_s=cpu_busy / host.units,
        gpus=gpus,
        cores=host.units,
        skipped=len(plans) - len(todo),
    )


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def flops_text(flops: float) -> str:
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9)):
        if flops >= scale:
            return f"{flops / scale:.1f} {unit}"
    return f"{flops:.2g}"


def table_rows(run: RunEstimate) -> list[tuple[str, ...]]:
    """(stage, cell, on, FLOPs, params, optimizer, activations, time) per cell, as text."""
    rows = []
    for item in run.cells:
        cost = item.cost
        if cost is None:
            rows.append(
                (item.plan.cell.stage, item.plan.cell.cell or "-", "-", "-", "-", "-", "-", duration(item.seconds))
            )
            continue
        rows.append(
            (
                item.plan.cell.stage,
                item.plan.cell.cell or "-",
                item.where + (" bf16" if cost.bf16 and item.where == "gpu" else ""),
                flops_text(cost.flops) if cost.flops else "-",
                f"{cost.param_bytes / GB:.3f} GB",
                f"{cost.optimizer_bytes / GB:.3f} GB",
                f"{cost.activation_bytes / GB:.3f} GB" + (f" x{cost.concurrent}" if cost.concurrent > 1 else ""),
                duration(item.seconds),
            )
        )
    return rows


def summary_lines(run: RunEstimate) -> list[str]:
    device = run.device
    efficiency = f"{device.efficiency:g} of peak ({'measured' if device.measured else 'assumed'})"
    where = f"{run.gpus} x {device.name}, " if run.gpus else ""
    parts = f"critical path {duration(run.critical_path_s)}, GPU work {duration(run.gpu_s)}, CPU work "
    lines = [
        f"total: {duration(run.total_s)} on {where}{run.cores} CPU cores ({parts}{duration(run.cpu_s)}); "
        f"efficiency {efficiency}",
    ]
    if run.skipped:
        lines.append(f"{run.skipped} cells are HIT (committed) and not counted")
    notes: dict[str, list[str]] = {}
    for item in run.cells:
        if item.cost is not None and item.cost.note:
            notes.setdefault(item.cost.note, []).append(item.label)
    for note, labels in notes.items():
        lines.append(f"note: {labels[0]}{f' and {len(labels) - 1} more' if len(labels) > 1 else ''}: {note}")
    return lines
