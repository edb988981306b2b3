"""`sparsepipe jobs`: detached runs (`run --cluster ADDR --detach`) on a cluster's job server."""

from __future__ import annotations

import json
import time
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .cli_options import ClusterOptionCommand
from .cluster import ClusterError
from .console import EXIT_CLUSTER, EXIT_FAILED, JsonOpt, err, fail, load_config, out

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Detached runs on a cluster (`sparsepipe run ... --cluster ADDR --detach`): list them, read or follow "
        "their logs, stop them. ADDR is the cluster's GCS address (HOST:PORT) or its job server (http://HOST:PORT); "
        "bare or absent: execution.address, then RAY_ADDRESS. Progress is in the store: `sparsepipe status`."
    ),
)

ClusterOpt = Annotated[
    Optional[str],
    typer.Option(
        "--cluster", metavar="[ADDRESS]", help="The cluster: HOST:PORT or http://HOST:PORT of its job server."
    ),
]
JobIdArg = Annotated[str, typer.Argument(help="The job id `run --detach` printed (or one from `jobs list`).")]


def _server(cluster: str | None) -> str:
    from .jobs import job_server

    cfg = load_config(None, None, [], None)
    try:
        return job_server(cluster, cfg.execution.address, cfg.execution.connect_timeout_s)[0]
    except ClusterError as error:
        fail(str(error), EXIT_CLUSTER)


def _guard(action):
    try:
        return action()
    except ClusterError as error:
        fail(str(error), EXIT_CLUSTER)


@app.command("list", cls=ClusterOptionCommand)
def list_(
    cluster: ClusterOpt = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Also jobs that are not sparsepipe runs.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The cluster's sparsepipe jobs, oldest first: id, status, start time, command."""
    from . import jobs

    url = _server(cluster)
    rows = [row for row in _guard(lambda: jobs.list_jobs(url)) if all_jobs or row["sparsepipe"]]
    if as_json:
        print(json.dumps({"job_server": url, "jobs": rows}, indent=2))
        return
    table = Table(title=f"jobs at {url}", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("id", "status", "started", "command"):
        table.add_column(column, overflow="fold")
    for row in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["start_time"])) if row["start_time"] else "-"
        table.add_row(escape(row["id"]), row["status"], started, escape(row["entrypoint"] or ""))
    out.print(table)


@app.command(cls=ClusterOptionCommand)
def logs(
    job_id: JobIdArg,
    cluster: ClusterOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing the log as it grows, until the job ends.")
    ] = False,
) -> None:
    """Print a job's log (its driver's output: the run's progress and summary). Exit 1 if the job failed."""
    from . import jobs

    url = _server(cluster)
    if follow:
        for chunk in _stream(url, job_id):
            print(chunk, end="", flush=True)
    else:
        print(_guard(lambda: jobs.logs(url, job_id)), end="")
    state = _guard(lambda: jobs.status(url, job_id))
    err.print(f"job {escape(job_id)}: {state}", highlight=False)
    if state in ("FAILED", "STOPPED"):
        raise typer.Exit(EXIT_FAILED)


def _stream(url: str, job_id: str):
    from . import jobs

    try:
        yield from jobs.follow(url, job_id)
    except ClusterError as error:
        fail(str(error), EXIT_CLUSTER)


@app.command(cls=ClusterOptionCommand)
def stop(job_id: JobIdArg, cluster: ClusterOpt = None) -> None:
    """Stop a job. Committed artifacts stay; the same `run` command later resumes where it stopped."""
    from . import jobs

    url = _server(cluster)
    stopped = _guard(lambda: jobs.stop(url, job_id))
    err.print(f"job {escape(job_id)}: {'stopping' if stopped else 'was not running'}", highlight=False)
