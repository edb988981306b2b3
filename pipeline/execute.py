"""One unit of work, as it runs inside a Ray task or actor: inputs in, worker, commit.

Everything here runs in the worker process.  It opens the store itself (the
spec travels, not the data), fetches the inputs, runs the stage's worker
function on a private scratch folder and commits the result.  It is
idempotent: a retried unit either finds its artifact committed by the first
try's winner or commits the same generation exclusively.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..workers.context import WorkContext
from .dag import CellRef
from .integrity import summarize, written_elsewhere
from .live import LiveStatus
from .scratch import scratch_dir
from .store import CommitRecord, Manifest, Store, StoreError, StoreSpec
from .tracking import Tracking

REPORT_INTERVAL_S = 0.25


@dataclass
class UnitRequest:
    """What the driver sends for one cell (small: references, never data)."""

    stage: str
    cell: str
    run: str
    key: str
    generation: int
    params: dict[str, Any]
    preimage: dict[str, Any]
    inputs: dict[str, tuple[bytes, str]]  # input name -> (manifest bytes, manifest path)
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    workers: int = 1  # > 1: data-parallel; num_cpus and num_gpus are per worker
    parents: dict[str, dict[str, str]] = field(default_factory=dict)
    verify_inputs: bool = False  # re-hash every input file (`run --verify-inputs`)
    trackers: tuple[str, ...] = ()  # execution.trackers: where the cell's scalars go besides TensorBoard
    failed_inputs: dict[str, str] = field(default_factory=dict)  # input name -> its error (accepts_failed_inputs)

    @property
    def label(self) -> str:
        return str(CellRef(self.stage, self.cell))


@dataclass(frozen=True)
class StoreInput:
    """An InputHandle: fetches a committed artifact on whichever node calls it (cached by digest)."""

    spec: StoreSpec
    manifest_raw: bytes
    manifest_path: str
    verify: bool = False  # re-hash every file (run --verify-inputs)

    def local_path(self) -> Path:
        manifest = Manifest(raw=self.manifest_raw, path=self.manifest_path)
        return checked_input(self.spec.open(), manifest.stage, manifest, self.verify)


def resolve_function(reference: str) -> Callable[..., Any]:
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _throttled(report: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    last = [0.0]

    def send(event: dict[str, Any]) -> None:
        now = time.monotonic()
        finished = event.get("total") is not None and event.get("completed") == event.get("total")
        if finished or event.get("note") or now - last[0] >= REPORT_INTERVAL_S:
            last[0] = now
            report(event)

    return send


class _Reporter:
    """A unit's ctx.report: every event to the trackers and the live record, then throttled to the controller.

    Pickled (a data-parallel cell sends ctx.report to its Ray Train ranks) it is the controller's channel alone:
    trackers and the live record stay in this process, fed by what rank 0 reports through the driver's bars.
    """

    def __init__(self, tracking: Tracking, live: LiveStatus, forward: Callable[[dict[str, Any]], None]):
        self.tracking, self.live, self.forward = tracking, live, forward

    def __call__(self, event: dict[str, Any]) -> None:
        self.tracking.observe(event)
        self.live.observe(event)
        self.forward(event)

    def __reduce__(self):
        return (_forwarding, (self.forward,))


def _drop(event: dict[str, Any]) -> None:
    return None


def _forwarding(forward: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return forward


def _limit_threads(num_cpus: float) -> int:
    threads = max(1, int(num_cpus))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    return threads


def _device(num_gpus: float) -> str:
    if num_gpus <= 0:
        return "cpu"  # without importing torch
    from ..kernels.device import pick_device

    return pick_device(num_gpus)


def ray_submit(
    calls: list[tuple[Callable[..., Any], tuple, dict[str, Any]]], on_result: Callable[[int, Any], None] | None = None
) -> list[Any]:
    """Run (function, args, resources) calls as concurrent Ray tasks; results in order.

    `on_result(index, result)` is called as each one finishes, so a caller can save progress early.
    """
    import ray

    refs = [ray.remote(function).options(**resources).remote(*args) for function, args, resources in calls]
    index_of = {ref: number for number, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        number = index_of[ready[0]]
        results[number] = ray.get(ready[0])
        if on_result is not None:
            on_result(number, results[number])
    return results


def checked_input(store: Store, name: str, manifest: Manifest, full: bool) -> Path:
    """A local folder holding input `name`, checked against its manifest before any use.

    Local stores: sizes from one listing, re-hash of files changed since the commit (all
    files when `full` or written on another host).  S3: every file is hashed on download,
    a cached copy is checked by size (re-hashed when `full`).
    """
    # S3: materialize hashes what it downloads.
    rehash = store.spec.is_local and (full or written_elsewhere(manifest.data))
    problems = store.check(manifest, full=rehash)
    if problems:
        label = f"{manifest.stage}/{manifest.cell}" if manifest.cell else manifest.stage
        raise StoreError(
            f"input {name} ({label}, generation {manifest.generation}) does not match its manifest: "
            f"{summarize(problems)}; `sparsepipe plan` shows it DAMAGED and `sparsepipe run` rebuilds it"
        )
    return store.materialize(manifest, verify=full)


def execute_unit(
    spec: StoreSpec,
    request: UnitRequest,
    report: Callable[[dict[str, Any]], None] | None = None,
    submit: Callable[..., list[Any]] | None = None,
) -> tuple[bytes, str, bool]:
    """Run one cell and commit it. Returns (manifest bytes, manifest path, won the commit)."""
    store = spec.open()
    existing = store.lookup(request.stage, request.key)
    if existing is not None and existing.generation >= request.generation:
        return existing.raw, existing.path, False  # a retry after the first attempt committed
    inputs = {
        name: checked_input(store, name, Manifest(raw=raw, path=path), request.verify_inputs)
        for name, (raw, path) in request.inputs.items()
    }
    started = time.time()
    progress = store.progress_area(request.stage, request.key, request.generation)
    with scratch_dir(request.stage) as scratch:
        out_dir = Path(scratch) / "out"
        out_dir.mkdir()
        tags = {"stage": request.stage, "cell": request.cell, "key": request.key}
        tracking = Tracking(Path(scratch) / "tensorboard", request.label, request.trackers, tags, progress)
        live = LiveStatus(progress, request.stage, request.cell, request.key, request.generation)
        ctx = WorkContext(
            out_dir=out_dir,
            inputs=inputs,
            progress=progress,
            num_threads=_limit_threads(request.num_cpus),
            device=_device(request.num_gpus if request.workers == 1 else 0.0),
            workers=request.workers,
            gpus_per_worker=request.num_gpus if request.workers > 1 else 0.0,
            cell=request.cell,
            submit=submit,
            handles={
                name: StoreInput(spec, raw, path, request.verify_inputs) for name, (raw, path) in request.inputs.items()
            },
            failed_inputs=dict(request.failed_inputs),
        )
        ctx.report = _Reporter(tracking, live, _throttled(report) if report is not None else _drop)
        try:
            resolve_function(request.run)(ctx, request.params)
        except BaseException:
            with contextlib.suppress(Exception):  # the cell's own error is the one to report
                tracking.close(None, ok=False)
                live.end(ok=False)
            raise
        tracking.close(out_dir)
        live.end(ok=True)
        record = CommitRecord(
            stage=request.stage,
            key=request.key,
            cell=request.cell,
            preimage=request.preimage,
            parents=request.parents,
            metrics=ctx.metrics,
            started=started,
            finished=time.time(),
        )
        manifest, won = store.commit(record, out_dir, request.generation)
    return manifest.raw, manifest.path, won
