"""The `sparsepipe` command.

Exit codes: 0 done; 1 a stage failed; 2 usage or config error; 3 a batch
finished with failed cells; 4 the store cannot be reached; 5 no Ray cluster
answers; 130 interrupted.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .cli_bench import app as bench_app
from .cli_circuits import export_circuit
from .cli_estimate import DEVICE_HELP, ESTIMATE_HELP, show_estimate
from .cli_failures import logs, note_failed, show_failed
from .cli_import import export_checkpoint, import_checkpoint
from .cli_jobs import app as jobs_app
from .cli_options import ClusterOptionCommand
from .cli_tasks import app as tasks_app
from .config import ConfigError, PipelineConfig
from .console import (
    EXIT_CLUSTER,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    EXIT_STORE,
    EXIT_USAGE,
    STORE_CLEAN,
    STORE_PLAN,
    STORE_READ,
    ConfigOpt,
    JsonOpt,
    PresetOpt,
    SetOpt,
    StoreOpt,
    err,
    out,
)
from .console import fail as _fail
from .console import load_config as _load
from .console import open_store as _open_store
from .console import registry as _registry
from .console import warn as _warn
from .dag import DAMAGED, HIT, RUN, CellPlan, Planner
from .devices import local_gpu_count, missing_gpus
from .failures import closed_failures
from .inprocess import ray_installed, run_in_process
from .integrity import BadManifest, summarize
from .store import Manifest, Store, StoreError

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="sparsepipe",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
    pretty_exceptions_show_locals=False,
    help=(
        "Weight-sparse transformers, end to end: tokenize a Python corpus, train sparse and dense models, "
        "prune every task to its circuit and tune pruning with CARBS, on Ray, with every result cached in an "
        "artifact store.\n\n"
        "Start with `sparsepipe run full` (the tiny preset on this machine), look with `sparsepipe plan` and "
        "`sparsepipe status`. Every run is resumable: run the same command again and committed work is skipped.\n\n"
        "Exit codes: 0 done, 1 a stage failed, 2 usage or config error, 3 a batch finished with failed cells, "
        "4 store unreachable, 5 no Ray cluster answers, 130 interrupted."
    ),
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the resolved configuration.")
app.add_typer(config_app, name="config")
app.add_typer(tasks_app, name="tasks")
app.add_typer(bench_app, name="bench")
app.add_typer(jobs_app, name="jobs")
app.command("import")(import_checkpoint)
app.command("export")(export_checkpoint)
app.command("export-circuit")(export_circuit)
app.command("logs")(logs)


def _targets(target: str) -> list[str]:
    registry = _registry()
    if target == "full":
        return list(registry.order)
    if target not in registry.stages:
        _fail(f"unknown stage {target!r}; stages are: full, {', '.join(registry.order)}", EXIT_USAGE)
    return [target]


def _forced(force: list[str] | None) -> set[str]:
    registry = _registry()
    for name in force or []:
        if name not in registry.stages:
            _fail(f"--force {name!r}: no such stage; stages are: {', '.join(registry.order)}", EXIT_USAGE)
    return set(force or [])


def _print_plan(plans: list[CellPlan]) -> None:
    table = Table(title="plan", show_lines=False)
    for column in ("stage", "cell", "status", "key", "reason"):
        table.add_column(column)
    for plan in plans:
        style = {RUN: "yellow", DAMAGED: "red"}.get(plan.status, "green")
        table.add_row(
            plan.cell.stage, plan.cell.cell or "-", f"[{style}]{plan.status}[/]", (plan.key or "?")[:12], plan.reason
        )
    out.print(table)


def _with_prune_selection(
    assignments: list[str] | None, tasks: list[str] | None, checkpoints: list[str] | None
) -> list[str]:
    """--tasks and --checkpoints as --set assignments of the config keys a stage declares for them."""
    assignments = list(assignments or [])
    shortcuts = {name: key for stage in _registry().stages.values() for name, key in stage.shortcuts.items()}
    for name, values in (("tasks", tasks), ("checkpoints", checkpoints)):
        if values:
            assignments.append(f"{shortcuts[name]}=" + json.dumps([v for item in values for v in item.split(",") if v]))
    return assignments


ClusterOpt = Annotated[
    Optional[str],
    typer.Option(
        "--cluster",
        metavar="[HOST:PORT]",
        help=(
            "Run on an existing Ray cluster: --cluster HOST:PORT, or a bare --cluster (anywhere on the line) "
            "for execution.address / RAY_ADDRESS."
        ),
    ),
]


@app.command(cls=ClusterOptionCommand)
def run(
    target: Annotated[
        str, typer.Argument(help="`full` for the whole pipeline, or one stage (its missing upstream stages run first).")
    ] = "full",
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    store: StoreOpt = None,
    force: Annotated[
        Optional[list[str]],
        typer.Option(
            "--force",
            "-f",
            help=(
                "Re-run this stage as a new generation; everything downstream re-runs because its parent "
                "changed (repeatable)."
            ),
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and exit without running anything.")
    ] = False,
    cluster: ClusterOpt = None,
    verify_inputs: Annotated[
        bool,
        typer.Option(
            "--verify-inputs",
            help=(
                "Re-hash every input file against its manifest before a stage uses it (default: sizes, and files "
                "changed since their commit)."
            ),
        ),
    ] = False,
    tasks: Annotated[
        Optional[list[str]],
        typer.Option("--tasks", help="Prune these tasks: all, names or globs, comma-separated or repeated."),
    ] = None,
    checkpoints: Annotated[
        Optional[list[str]],
        typer.Option(
            "--checkpoints", help="Prune these models: all, stage names (pretrain, dense, bridges) or globs over cells."
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help=(
                "With --cluster: submit this run as a Ray Job on the cluster (config and store settings travel with "
                "it), print its id and return. Follow it with `sparsepipe jobs logs ID --follow`."
            ),
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the pipeline (or one stage), skipping every cell whose artifact is already committed.

    Examples:

      sparsepipe run full                          # the tiny preset, local Ray instance

      sparsepipe run tokenize --preset smoke       # one stage

      sparsepipe run full --cluster 10.0.0.5:6379 --store s3://bucket/runs

      sparsepipe run prune --tasks all --checkpoints all   # overnight batch pruning

      sparsepipe run full --cluster 10.0.0.5:6379 --store s3://bucket/runs --detach   # close the laptop
    """
    from .runner import ClusterError, Runner

    cfg = _load(preset, config, _with_prune_selection(set_, tasks, checkpoints), store)
    targets, forced = _targets(target), _forced(force)
    backend = _open_store(cfg)
    registry = _registry()
    if dry_run:
        _emit_plan(_plan_or_exit(registry, backend, cfg, targets, forced), as_json)
        return
    if detach:
        _detach(cfg, target, forced, verify_inputs, cluster, as_json)
        return
    from .progress import ProgressView

    started = time.time()
    try:
        _check_gpus(cfg, registry, backend, targets, forced, cluster)
        if cluster is None and not ray_installed():
            err.print("Ray is not installed here: every cell runs in this process, one after another")
            report = run_in_process(registry, backend, cfg, targets, forced, verify_inputs=verify_inputs)
        else:
            with ProgressView(err) as view:
                runner = Runner(registry, backend, cfg, progress=view, verify_inputs=verify_inputs)
                report = runner.run(targets, forced, cluster, on_connect=lambda where: err.print(f"running on {where}"))
    except ClusterError as error:
        _fail(str(error), EXIT_CLUSTER)
    except ConfigError as error:
        _fail(str(error), EXIT_USAGE)
    except StoreError as error:
        _fail(str(error), EXIT_STORE)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: committed artifacts are kept; run the same command again to resume")
        raise typer.Exit(EXIT_INTERRUPTED)
    failed = report.failed
    if as_json:
        print(
            json.dumps(
                {
                    "ok": not failed,
                    "ray_started": report.ray_started,
                    "seconds": round(time.time() - started, 3),
                    "cells": [o.as_json() for o in report.outcomes],
                },
                indent=2,
            )
        )
    else:
        ran = sum(1 for o in report.outcomes if o.plan.status != HIT and o.ok)
        hits = sum(1 for o in report.outcomes if o.plan.status == HIT)
        err.print(
            f"{ran} cells ran, {hits} were cached (HIT), {len(failed)} failed, in {time.time() - started:.1f}s; "
            f"store {cfg.store}"
        )
    for outcome in failed:
        err.print(
            f"[red]failed[/] {outcome.plan.cell.ref}: {escape(outcome.failure_line())}",
            soft_wrap=True,
            highlight=False,
        )
    if failed:
        matrix_only = all(registry[o.plan.cell.stage].matrix for o in failed)
        out_of_memory = any(o.out_of_memory for o in failed)
        raise typer.Exit(EXIT_PARTIAL if matrix_only and not out_of_memory else EXIT_FAILED)


def _detach(
    cfg: PipelineConfig, target: str, forced: set[str], verify_inputs: bool, cluster: str | None, as_json: bool
) -> None:
    from .cluster import ClusterError
    from .jobs import job_server, submit
    from .runner import forwarded_env

    if cluster is None:
        _fail("--detach submits the run to a cluster's job server: add --cluster [HOST:PORT]", EXIT_USAGE)
    try:
        url, access = job_server(cluster, cfg.execution.address, cfg.execution.connect_timeout_s)
        job_id = submit(url, access, cfg, target, forced, verify_inputs, forwarded_env())
    except ClusterError as error:
        _fail(str(error), EXIT_CLUSTER)
    if as_json:
        print(json.dumps({"job_id": job_id, "job_server": url, "store": cfg.store}))
    else:
        print(job_id)
    err.print(
        f"submitted to {url}; `sparsepipe jobs logs {job_id} --cluster {url} --follow` follows it, "
        f"`sparsepipe status --store {cfg.store}` shows what is committed",
        soft_wrap=True,
        highlight=False,
    )


def _plan_or_exit(
    registry, backend: Store, cfg: PipelineConfig, targets: list[str], forced: set[str]
) -> list[CellPlan]:
    planner = Planner(registry, backend)
    try:
        plans = planner.plan(cfg, targets, forced)
    except ConfigError as error:  # e.g. --tasks naming no task
        _fail(str(error), EXIT_USAGE)
        raise
    except StoreError as error:
        _fail(str(error), EXIT_STORE)
        raise
    for warning in planner.warnings:
        _warn(warning)
    return plans


def _emit_plan(plans: list[CellPlan], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"cells": [p.as_json() for p in plans]}, indent=2))
    else:
        _print_plan(plans)


@app.command(cls=ClusterOptionCommand)
def plan(
    target: Annotated[str, typer.Argument(help="`full` or one stage.")] = "full",
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    store: StoreOpt = None,
    force: Annotated[
        Optional[list[str]], typer.Option("--force", "-f", help="Plan as if this stage were forced.")
    ] = None,
    tasks: Annotated[Optional[list[str]], typer.Option("--tasks", help="As for `run`.")] = None,
    checkpoints: Annotated[Optional[list[str]], typer.Option("--checkpoints", help="As for `run`.")] = None,
    cluster: ClusterOpt = None,
    estimate: Annotated[bool, typer.Option("--estimate", help=ESTIMATE_HELP)] = False,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Show, for every stage and cell, HIT (committed, will be skipped), RUN or DAMAGED (rebuilt) and why.

    A RUN reason names what changed since the cell was last built: params (which keys),
    code, stage version, an upstream artifact, or `never built`. With --cluster it also joins that cluster
    and checks that it can hold every cell to run (data-parallel training workers: exit 5 naming the
    resources when it cannot), without running anything.
    """
    cfg = _load(preset, config, _with_prune_selection(set_, tasks, checkpoints), store)
    plans = _plan_or_exit(_registry(), _open_store(cfg, STORE_PLAN), cfg, _targets(target), _forced(force))
    if cluster is not None:
        _check_placement(cfg, cluster, [p.cell for p in plans if p.status != HIT])
    _check_gpus(cfg, _registry(), None, [], set(), cluster, plans)
    if estimate:
        show_estimate(_registry(), cfg, plans, device, as_json)
        return
    _emit_plan(plans, as_json)


def _check_gpus(cfg, registry, backend, targets, forced, cluster, plans=None) -> None:
    """execution.require_gpus on a machine without a GPU: exit 5 naming the cells, before anything runs."""
    if not cfg.execution.require_gpus or cluster is not None:  # a cluster's GPUs are checked when it is joined
        return
    plans = plans if plans is not None else _plan_or_exit(registry, backend, cfg, targets, forced)
    problem = missing_gpus([p.cell for p in plans if p.status != HIT], local_gpu_count())
    if problem:
        _fail(problem, EXIT_CLUSTER)


def _check_placement(cfg: PipelineConfig, cluster: str, cells: list[Any]) -> None:
    import ray

    from .runner import ClusterError, check_placeable, connect, placeable_resources

    try:
        connect(cfg, cluster)
        check_placeable(cells, placeable_resources())
    except ClusterError as error:
        _fail(str(error), EXIT_CLUSTER)
    finally:
        ray.shutdown()


# Metric names shown in the compact status line, in priority order, with their short labels.
HEADLINE_METRICS = (
    ("edges", "edges"),
    ("circuit_loss", "loss"),
    ("final_val_loss", "val_loss"),
    ("train_tokens", "tokens"),
    ("trusted_circuits", "trusted"),
    ("cells", "cells"),
    ("reached_target", "reached"),
)


def _headline(manifest: Manifest, limit: int = 2) -> str:
    """A compact summary of an artifact's metrics (all of them: `status STAGE` or --json)."""
    metrics = manifest.metrics
    shown = [
        f"{label}={_short(metrics[name])}"
        for name, label in HEADLINE_METRICS
        if name in metrics and not isinstance(metrics[name], (dict, list))
    ]
    if not shown:
        shown = [f"{k}={_short(v)}" for k, v in metrics.items() if not isinstance(v, (dict, list))]
    return " ".join(shown[:limit])


def _label(manifest: Manifest) -> str:
    return f"{manifest.stage}/{manifest.cell}" if manifest.cell else manifest.stage


def _scan(backend: Store) -> tuple[list[Manifest], list[BadManifest], list[BadManifest]]:
    """(current artifacts, bad manifest files that matter, bad ones a newer valid generation superseded).

    An artifact is the newest valid generation of its key; older generations are history.
    """
    try:
        found = list(backend.scan_manifests())
    except StoreError as error:
        _fail(str(error), EXIT_STORE)
        raise
    newest: dict[tuple[str, str], Manifest] = {}
    for manifest in (m for m in found if isinstance(m, Manifest)):
        current = newest.get((manifest.stage, manifest.key))
        if current is None or manifest.generation > current.generation:
            newest[(manifest.stage, manifest.key)] = manifest
    current_paths = {m.path for m in newest.values()}
    manifests = [m for m in found if isinstance(m, Manifest) and m.path in current_paths]
    bad = [m for m in found if isinstance(m, BadManifest)]

    def superseded(item: BadManifest) -> bool:
        valid = newest.get((item.stage, item.key))
        return valid is not None and valid.generation > (item.generation or 0)

    return manifests, [b for b in bad if not superseded(b)], [b for b in bad if superseded(b)]


@app.command()
def status(
    stage: Annotated[Optional[str], typer.Argument(help="Show every metric of this stage's artifacts.")] = None,
    store: StoreOpt = None,
    failed: Annotated[
        bool,
        typer.Option(
            "--failed", help="List the cells whose last attempt failed (not committed since), with their error."
        ),
    ] = False,
    as_json: JsonOpt = False,
    running: Annotated[
        bool, typer.Option("--running", help="Cells in progress: step, last losses, throughput, ETA (any host).")
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", help="With --running: refresh every 2 s until Ctrl-C.")] = False,
) -> None:
    """List committed artifacts: one compact line each (cell, generation, size, headline metrics).

    `status STAGE` shows every metric of that stage's artifacts; --json everything, with paths.
    Artifacts whose files no longer match their manifest are marked DAMAGED; manifest files
    that cannot be read are skipped with a warning (`sparsepipe verify` lists them).
    `status --running [--watch]` shows the cells in progress instead, read from the store (a detached
    run or a cluster's, seen from anywhere that reaches the store).
    `status --failed` lists the failed cells of the last runs instead; `sparsepipe logs CELL` prints one's traceback.
    """
    cfg = _load(None, None, [], store)
    backend = _open_store(cfg, STORE_READ)
    if watch and not running:
        _fail("--watch goes with --running", EXIT_USAGE)
    if running and failed:
        _fail("--running and --failed are two views: give one", EXIT_USAGE)
    if running:
        from .cli_running import show_running

        try:
            show_running(backend, watch, as_json)
        except KeyboardInterrupt:
            pass
        except StoreError as error:
            _fail(str(error), EXIT_STORE)
        return
    if failed:
        show_failed(backend, cfg.store, as_json)
        return
    if stage is not None and stage not in _registry().stages:
        _fail(f"unknown stage {stage!r}; stages are: {', '.join(_registry().order)}", EXIT_USAGE)
    manifests, bad, superseded = _scan(backend)
    for item in bad + superseded:
        _warn(f"skipping {item.describe()} (`sparsepipe verify` lists it)")
    if stage is not None:
        manifests = [m for m in manifests if m.stage == stage]
    damage = {m.path: backend.check(m) for m in manifests}
    if as_json:
        artifacts = [{**_manifest_json(m, backend.attempt_url(m)), "damaged": damage[m.path]} for m in manifests]
        unreadable = [{"path": b.path, "problem": b.problem} for b in bad]
        print(
            json.dumps(
                {"store": cfg.store, "artifacts": artifacts, "unreadable_manifests": unreadable},
                indent=2,
            )
        )
        return
    if stage is not None:
        for manifest in manifests:
            state = f" [red]DAMAGED[/] {escape(summarize(damage[manifest.path]))}" if damage[manifest.path] else ""
            out.print(
                f"[bold]{escape(_label(manifest))}[/] gen {manifest.generation} key {manifest.key[:12]} "
                f"{_size(manifest.size)}{state}",
                highlight=False,
            )
            out.print(f"  {backend.attempt_url(manifest)}", highlight=False, soft_wrap=True)
            for name, value in manifest.metrics.items():
                text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else _short(value)
                out.print(f"  {name}: {escape(text)}", highlight=False)
        if not manifests:
            err.print(f"no committed {stage} artifacts in {cfg.store}")
        return
    table = Table(title=f"artifacts in {cfg.store}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("artifact", overflow="fold", ratio=1)
    table.add_column("gen", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("headline", no_wrap=True, overflow="ellipsis")
    for manifest in manifests:
        headline = "[red]DAMAGED[/]" if damage[manifest.path] else escape(_headline(manifest))
        table.add_row(escape(_label(manifest)), str(manifest.generation), _size(manifest.size), headline)
    out.print(table)
    report_stages = {stage.name for stage in _registry().stages.values() if "report" in stage.provides}
    reports = [m for m in manifests if m.stage in report_stages]
    if reports:
        newest = max(reports, key=lambda m: m.data.get("committed_at", 0))
        out.print(f"report: {backend.attempt_url(newest)}/index.html", soft_wrap=True, highlight=False)
    note_failed(backend, manifests)
    if any(damage.values()):
        err.print("DAMAGED artifacts are rebuilt by the next `sparsepipe run`; `sparsepipe verify` names their files")


def _manifest_json(manifest, path: str) -> dict[str, Any]:
    return {
        "path": path,
        "stage": manifest.stage,
        "cell": manifest.cell,
        "key": manifest.key,
        "generation": manifest.generation,
        "digest": manifest.digest,
        "size": manifest.size,
        "files": len(manifest.files),
        "metrics": manifest.metrics,
    }


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return str(size)


@app.command()
def verify(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Re-hash every committed artifact against its MANIFEST, and check that every MANIFEST file is one.

    Exit 1 if any file is missing or changed, or any manifest file is unreadable; each problem comes with
    how to repair it.
    """
    cfg = _load(None, None, [], store)
    backend = _open_store(cfg, STORE_READ)
    manifests, bad, superseded = _scan(backend)
    for item in superseded:
        _warn(f"{item.describe()}; superseded by a newer generation (delete the file to silence this)")
    results = []
    for manifest in manifests:
        problems = backend.verify(manifest)
        repair = None
        if problems:
            repair = (
                f"`sparsepipe run {manifest.stage}` with the config that built it rebuilds it as generation "
                f"{backend.next_generation(manifest.stage, manifest.key)}"
            )
        results.append(
            {
                "stage": manifest.stage,
                "cell": manifest.cell,
                "key": manifest.key,
                "generation": manifest.generation,
                "problems": problems,
                "repair": repair,
            }
        )
        if not as_json:
            label = f"{manifest.stage}/{manifest.cell or '-'} {manifest.key[:12]} gen {manifest.generation}"
            if problems:
                err.print(
                    f"[red]CORRUPT[/] {escape(label)}: {escape('; '.join(problems))}; repair: {escape(repair or '')}",
                    soft_wrap=True,
                    highlight=False,
                )
            else:
                err.print(f"[green]ok[/] {escape(label)}", highlight=False)
    unreadable = []
    for item in bad:
        repair = (
            f"`sparsepipe run {item.stage} --force {item.stage}` with the config that built it commits generation "
            f"{backend.next_generation(item.stage, item.key)}; `gc` keeps this key's attempts while the file exists"
        )
        unreadable.append(
            {"path": item.path, "stage": item.stage, "key": item.key, "problem": item.problem, "repair": repair}
        )
        if not as_json:
            err.print(
                f"[red]UNREADABLE[/] {escape(item.describe())}; repair: {escape(repair)}",
                soft_wrap=True,
                highlight=False,
            )
    corrupt = [r for r in results if r["problems"]]
    if as_json:
        print(
            json.dumps(
                {
                    "checked": len(results),
                    "corrupt": len(corrupt),
                    "unreadable": len(unreadable),
                    "artifacts": results,
                    "unreadable_manifests": unreadable,
                },
                indent=2,
            )
        )
    else:
        err.print(f"{len(results)} artifacts checked, {len(corrupt)} corrupt, {len(unreadable)} unreadable manifest(s)")
    if corrupt or unreadable:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def gc(
    store: StoreOpt = None,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than", min=0, help="Only what is untouched for this many seconds (protects runs in flight)."
        ),
    ] = 3600.0,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List what would be removed, one path per line, and remove nothing."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove what no committed artifact needs: unreferenced attempts (crashed or lost writers), the resume
    state (`progress/`) of cells already committed, and what killed workers left on this machine: scratch
    folders in the temp directory and half-done downloads in the local artifact cache ($SPARSEPIPE_CACHE).
    A failed cell's traceback (`status --failed`) stays until the cell commits, under any key.

    Committed artifacts are never touched, nor any attempt of a key with an unreadable MANIFEST.
    """
    import shutil

    from .scratch import stale_fetches, stale_scratch
    from .store import local_cache_root

    cfg = _load(None, None, [], store)
    backend = _open_store(cfg, STORE_CLEAN)
    try:
        progress = backend.finished_progress(older_than)
        inside = tuple(folder.rstrip("/") + "/" for folder in progress)
        found = {
            "attempts": backend.garbage(older_than),
            "progress": progress,
            # failure records of cells committed since under another key (those of this key go with `progress`)
            "failures": [p for p in closed_failures(backend, older_than) if not p.startswith(inside)],
            "scratch": [str(p) for p in stale_scratch(older_than, include_unowned=True)],
            "fetches": [str(p) for p in stale_fetches(local_cache_root(), older_than)],
        }
        if not dry_run:
            for path in found["attempts"] + found["progress"] + found["failures"]:
                backend.remove(path)
            for path in found["scratch"] + found["fetches"]:
                shutil.rmtree(path, ignore_errors=True)
    except StoreError as error:
        _fail(str(error), EXIT_STORE)
    if as_json:
        print(json.dumps({"removed" if not dry_run else "would_remove": found}, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    if dry_run:
        for kind, paths in found.items():
            for path in paths:
                print(f"{kind}\t{backend.url_of(path) if kind not in ('scratch', 'fetches') else path}")
    err.print(
        f"{verb} {len(found['attempts'])} unreferenced attempt(s), {len(found['progress'])} finished progress "
        f"folder(s), {len(found['failures'])} failure record(s) of cells committed since, {len(found['scratch'])} "
        f"scratch folder(s), {len(found['fetches'])} half-done download(s)"
    )


@app.command()
def dag(as_json: JsonOpt = False) -> None:
    """Print the stage graph: each stage, what it reads from, and what it does (as `dvc dag`)."""
    registry = _registry()
    stages = [registry[name] for name in registry.order]
    if as_json:
        data = {
            "stages": [
                {
                    "name": s.name,
                    "deps": list(registry.deps(s.name)),
                    "version": s.version,
                    "matrix": s.matrix,
                    "config": list(s.config),
                    "run": s.run,
                    "description": s.description,
                }
                for s in stages
            ],
            "edges": [[dep, s.name] for s in stages for dep in registry.deps(s.name)],
        }
        print(json.dumps(data, indent=2))
        return
    print(render_dag(registry))


def render_dag(registry) -> str:
    """The graph as text: one line per stage in dependency order, with a box-drawn arrow from each upstream."""
    width = max(len(name) for name in registry.order)
    lines = []
    for name in registry.order:
        stage = registry[name]
        kind = "per cell" if stage.matrix else "one cell"
        lines.append(f"{name:<{width}}  [{kind}]  {stage.description}")
        deps = registry.deps(name)
        for number, dep in enumerate(deps):
            corner = "└" if number == len(deps) - 1 else "├"
            lines.append(f"{'':<{width}}  {corner}── {dep}")
    edges = [f"{dep} -> {name}" for name in registry.order for dep in registry.deps(name)]
    return "\n".join(
        [
            "stages, upstream first (each lists what it reads from):",
            "",
            *lines,
            "",
            "edges:",
            *(f"  {e}" for e in edges),
        ]
    )


@config_app.command("show")
def config_show(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the resolved configuration (preset < config file < SPARSEPIPE_* environment < --set)."""
    cfg = _load(preset, config, set_, store)
    data = cfg.model_dump(mode="json")
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        import yaml

        out.print(yaml.safe_dump(data, sort_keys=False), highlight=False, markup=False)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(EXIT_INTERRUPTED)
