"""Executing a plan on Ray: a private local instance by default, an existing cluster with --cluster.

The driver schedules a cell as soon as all its inputs are committed, so
independent stages and cells overlap.  Data never passes through the driver:
a unit receives manifest references and reads and writes the store itself.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .cluster import ClusterError, open_cluster, resolve_address
from .config import PipelineConfig
from .dag import HIT, CellPlan, CellRef, Planner, Registry
from .execute import UnitRequest, execute_unit, ray_submit
from .failures import failure_of, record_failure
from .oom import failure_describer
from .store import Manifest, Store, StoreError, StoreSpec

# Variables a worker on another node needs to reach the same store and behave the same.
FORWARDED_ENV_PREFIXES = ("AWS_", "SPARSEPIPE_", "TRITON_")


@dataclass
class CellOutcome:
    plan: CellPlan
    manifest: Manifest | None = None
    error: str | None = None
    skipped_because: str | None = None
    seconds: float = 0.0
    where: str | None = None  # the innermost frame of project code the error came from ("file:line in function")
    traceback: str | None = None
    failure_record: str | None = None  # the store URL of the cell's failure.json (`sparsepipe logs`)
    out_of_memory: bool = False  # the cell ran out of GPU memory (pipeline/oom.py)

    @property
    def ok(self) -> bool:
        return self.manifest is not None

    def failure_line(self) -> str:
        """One line for a cell that failed: its error, where it came from and where its traceback is."""
        if self.error is None:
            return self.skipped_because or ""
        at = f" (at {self.where})" if self.where else ""
        kept = f"; traceback: `sparsepipe logs {self.plan.cell.ref}`" if self.failure_record else ""
        return f"{self.error}{at}{kept}"

    def as_json(self) -> dict[str, Any]:
        data = self.plan.as_json()
        if self.manifest is not None:
            data.update(
                key=self.manifest.key,
                generation=self.manifest.generation,
                digest=self.manifest.digest,
                metrics=self.manifest.metrics,
            )
        data.update(error=self.error, skipped_because=self.skipped_because, seconds=round(self.seconds, 3))
        if self.error is not None:
            data.update(where=self.where, traceback=self.traceback, failure_record=self.failure_record)
        return data


@dataclass
class RunReport:
    outcomes: list[CellOutcome] = field(default_factory=list)
    ray_started: bool = False

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.error is not None or o.skipped_because is not None]


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


def connect(config: PipelineConfig, cluster: str | None) -> str:
    """Start or join Ray. Returns a description of where we run."""
    import ray

    runtime_env = {"env_vars": forwarded_env()}
    if cluster is None:
        # Ray starts its workers at niceness 15: on a shared laptop every nice-0 process (an editor's
        # language server, a test run) then starves our trainers (measured: 4% CPU each at load 15).
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(
            address="local",
            num_cpus=config.execution.num_cpus or os.cpu_count(),
            object_store_memory=config.execution.object_store_mb * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=bool(os.environ.get("SPARSEPIPE_RAY_LOGS")),
            runtime_env=runtime_env,
            configure_logging=False,
        )
        return f"local Ray instance ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"
    address = resolve_address(cluster, config.execution.address)
    access = open_cluster(address, config.execution.connect_timeout_s)
    runtime_env["env_vars"].update(access.env)
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):  # a detached driver: the job's runtime env already has them
        runtime_env = None
    try:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError) as error:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {error}") from None
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return f"Ray cluster at {address} ({len(nodes)} nodes, {int(ray.cluster_resources().get('CPU', 0))} CPUs)"


def placeable_resources() -> dict[str, float]:
    """The connected cluster's resources, or what its autoscaler may grow it to where that is more.

    A KubeRay cluster whose worker groups scale from zero has no GPUs until work asks for them; its
    node-group limits (the autoscaler's cluster config in the GCS; private Ray API, so any failure to
    read it falls back to what is there now) say what it can hold.
    """
    import ray

    resources = dict(ray.cluster_resources())
    try:
        from ray._private.state import state

        ceiling = state.get_max_resources_from_cluster_config() or {}
    except Exception:  # an older or newer Ray without this call: judge by what is there now
        ceiling = {}
    for name, most in ceiling.items():
        resources[name] = max(resources.get(name, 0.0), float(most))
    return resources


def check_placeable(cells: list[Any], cluster: dict[str, float]) -> None:
    """A data-parallel cell whose workers the cluster cannot hold at once fails now, not by waiting forever."""
    for cell in cells:
        resources = cell.resources
        if resources.workers <= 1:
            continue
        for name, each in (("CPU", resources.num_cpus), ("GPU", resources.num_gpus)):
            if name == "GPU" and not cluster.get("GPU"):
                continue  # without GPUs the workers train on the CPU
            needed, total = resources.workers * each, cluster.get(name, 0.0)
            if needed > total:
                raise ClusterError(
                    f"{cell.ref} needs {resources.workers} training workers x {each:g} {name} = {needed:g} {name}, "
                    f"but the cluster has {total:g} {name}: lower execution.train_workers (or "
                    f"execution.{'cpus' if name == 'CPU' else 'gpus'}_per_trainer), or add nodes"
                )


def _remote_units():
    """Ray wrappers around execute_unit, built lazily so `plan` never imports ray."""
    import ray

    @ray.remote
    class ProgressBoard:
        def __init__(self) -> None:
            self.events: dict[str, dict[str, Any]] = {}
            self.notes: dict[str, list[str]] = {}  # lines a cell wants logged (e.g. "resumed at step 200"), kept

        def update(self, label: str, event: dict[str, Any]) -> None:
            notes = self.notes.setdefault(label, [])
            if event.get("note"):
                notes.append(str(event["note"]))
            self.events[label] = {**event, "notes": list(notes)}

        def snapshot(self) -> dict[str, dict[str, Any]]:
            return dict(self.events)

    def run_unit(spec: StoreSpec, request: UnitRequest, board: Any) -> tuple[bytes, str, bool]:
        def report(event: dict[str, Any]) -> None:
            board.update.remote(request.label, event)

        return execute_unit(spec, request, report=report, submit=ray_submit)

    @ray.remote
    class CellActor:
        """Stateful trainers run in an actor of their own."""

        def run(self, spec: StoreSpec, request: UnitRequest, board: Any) -> tuple[bytes, str, bool]:
            return run_unit(spec, request, board)

    return ProgressBoard, ray.remote(run_unit), CellActor


class Runner:
    def __init__(
        self,
        registry: Registry,
        store: Store,
        config: PipelineConfig,
        progress: Any = None,
        verify_inputs: bool = False,
    ):
        self.registry = registry
        self.store = store
        self.config = config
        self.verify_inputs = verify_inputs
        self.planner = Planner(registry, store, verify_inputs=verify_inputs)
        self.progress = progress  # a ProgressView, or None

    def _request(
        self,
        plan: CellPlan,
        committed: dict[CellRef, Manifest],
        has_gpus: bool,
        failed: dict[CellRef, str] | None = None,
    ) -> UnitRequest:
        """The unit of `plan`: its committed inputs, and (accepts_failed_inputs) the errors of those that failed."""
        cell = plan.cell
        stage = self.registry[cell.stage]
        present = {name: ref for name, ref in cell.inputs.items() if ref in committed}
        inputs = {name: (committed[ref].raw, committed[ref].path) for name, ref in present.items()}
        parents = {
            name: {"stage": ref.stage, "cell": ref.cell, "key": committed[ref].key, "digest": committed[ref].digest}
            for name, ref in present.items()
        }
        failed_inputs = {name: (failed or {})[ref] for name, ref in cell.inputs.items() if ref not in committed}
        return UnitRequest(
            stage=cell.stage,
            cell=cell.cell,
            run=stage.run,
            key=plan.key or "",
            generation=plan.generation,
            params=cell.params,
            preimage=plan.preimage or {},
            inputs=inputs,
            num_cpus=cell.resources.num_cpus,
            num_gpus=cell.resources.num_gpus if has_gpus else 0.0,
            workers=cell.resources.workers,
            parents=parents,
            verify_inputs=self.verify_inputs,
            trackers=tuple(self.config.execution.trackers),
            failed_inputs=failed_inputs,
        )

    def _keep_failure(self, outcome: CellOutcome, error: Exception) -> None:
        """The error of a failed cell on its outcome, and its traceback in the store (`failures`)."""
        plan = outcome.plan
        failure = failure_of(plan.cell.stage, plan.cell.cell, plan.key or "", plan.generation, error)
        outcome.error, outcome.where, outcome.traceback = failure.error, failure.where, failure.traceback
        try:
            outcome.failure_record = record_failure(self.store, failure)
        except (StoreError, OSError) as problem:  # the run goes on; the traceback is still in its log
            outcome.traceback += f"\n(could not keep this traceback in the store: {problem})"

    @staticmethod
    def _in_flight_of(stage: str, in_flight: dict[Any, tuple[CellPlan, float, Any]]) -> int:
        return sum(1 for plan, _, _ in in_flight.values() if plan.cell.stage == stage)

    def run(
        self, targets: list[str], forced: set[str], cluster: str | None, on_connect: Callable[[str], None] | None = None
    ) -> RunReport:
        import ray

        report = RunReport()
        static = self.planner.plan(self.config, targets, forced)
        committed = {p.cell.ref: p.manifest for p in static if p.status == HIT and p.manifest is not None}
        todo = [p.cell for p in static if p.status != HIT]
        report.outcomes.extend(CellOutcome(p, manifest=p.manifest) for p in static if p.status == HIT)
        if todo:  # before any progress output: a cluster that refuses us ends the run with one line
            where = connect(self.config, cluster)
            report.ray_started = True
            check_placeable(todo, placeable_resources())
            if on_connect:
                on_connect(where)
        if self.progress:
            self.progress.start(static)
        if not todo:
            return report
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        describe = failure_describer(self.registry, self.config, static)
        board_class, run_task, actor_class = _remote_units()
        board = board_class.remote()
        spec = self.store.spec
        in_flight: dict[Any, tuple[CellPlan, float, Any]] = {}
        failed: dict[CellRef, str] = {}  # cells that failed or were skipped -> their one-line error
        retries = self.config.execution.max_retries
        try:
            while todo or in_flight:
                for cell in list(todo):
                    accepts_failed = self.registry[cell.stage].accepts_failed_inputs
                    dead = [ref for ref in cell.inputs.values() if ref in failed]
                    if dead and not accepts_failed:
                        todo.remove(cell)
                        plan = CellPlan(cell, "RUN", "upstream failed")
                        outcome = CellOutcome(plan, skipped_because=f"upstream {', '.join(map(str, dead))} failed")
                        failed[cell.ref] = outcome.skipped_because or ""
                        report.outcomes.append(outcome)
                        if self.progress:
                            self.progress.finish(plan, ok=False, error=outcome.failure_line())
                        continue
                    if not all(ref in committed or ref in failed for ref in cell.inputs.values()):
                        continue
                    if (
                        self.registry[cell.stage].matrix
                        and self._in_flight_of(cell.stage, in_flight) >= self.config.execution.max_concurrent_cells
                    ):
                        continue
                    todo.remove(cell)
                    plan = self.planner.plan_cell(cell, committed, set(), forced, failed)
                    if plan.status == HIT and plan.manifest is not None:
                        committed[cell.ref] = plan.manifest
                        report.outcomes.append(CellOutcome(plan, manifest=plan.manifest))
                        if self.progress:
                            self.progress.finish(plan, ok=True)
                        continue
                    request = self._request(plan, committed, has_gpus, failed)
                    options = {"num_cpus": request.num_cpus, "num_gpus": request.num_gpus}
                    if request.workers > 1:  # its workers hold the resources, the unit itself none
                        options = {"num_cpus": 0, "num_gpus": 0}
                    if cell.resources.actor:
                        actor = actor_class.options(**options, max_restarts=retries, max_task_retries=retries).remote()
                        ref = actor.run.remote(spec, request, board)
                    else:
                        actor = None
                        ref = run_task.options(**options, max_retries=retries).remote(spec, request, board)
                    in_flight[ref] = (plan, time.time(), actor)
                    if self.progress:
                        self.progress.begin(plan)
                if not in_flight:
                    continue
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.25)
                if self.progress:
                    self.progress.update(ray.get(board.snapshot.remote()))
                for ref in ready:
                    plan, started, actor = in_flight.pop(ref)
                    outcome = CellOutcome(plan, seconds=time.time() - started)
                    try:
                        raw, path, _ = ray.get(ref)
                        outcome.manifest = Manifest(raw=raw, path=path)
                        committed[plan.cell.ref] = outcome.manifest
                    except ray.exceptions.RayError as error:
                        self._keep_failure(outcome, error)
                        oom = describe(plan, error)
                        if oom:
                            outcome.error, outcome.out_of_memory = oom, True
                        failed[plan.cell.ref] = outcome.error or ""
                    if actor is not None:
                        ray.kill(actor)
                    report.outcomes.append(outcome)
                    if self.progress:
                        self.progress.finish(
                            plan, ok=outcome.ok, error=outcome.failure_line(), detail=outcome.traceback
                        )
        finally:
            for ref, (_, _, actor) in in_flight.items():
                ray.cancel(ref, force=True) if actor is None else ray.kill(actor)
            ray.shutdown()
            if cluster is None:  # workers killed mid-cell leave their scratch folders on this machine
                from .scratch import remove_stale_scratch

                remove_stale_scratch(wait_s=3.0 if any(o.error for o in report.outcomes) or in_flight else 0.0)
        return report
