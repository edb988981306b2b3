"""`sparsepipe status --failed` and `sparsepipe logs CELL`: the failed cells of the last runs, read from the store.

A failed cell's traceback is kept in the store (`failures.py`), so these work from any machine that reaches
it: a laptop reading the S3 store of a cluster run or a detached job.
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .console import EXIT_FAILED, EXIT_STORE, STORE_READ, JsonOpt, StoreOpt, err, fail, load_config, open_store, out
from .failures import Failure, find_failure, open_failures
from .store import Manifest, Store, StoreError


def _when(failure: Failure) -> str:
    return datetime.datetime.fromtimestamp(failure.failed_at).strftime("%Y-%m-%d %H:%M:%S")


def _open_failures(backend: Store, manifests: list[Manifest] | None = None) -> list[Failure]:
    try:
        return open_failures(backend, manifests)
    except StoreError as error:
        fail(str(error), EXIT_STORE)


def show_failed(backend: Store, store_url: str, as_json: bool) -> None:
    """The body of `status --failed`: every cell whose last attempt failed and that has not committed since."""
    failures = _open_failures(backend)
    if as_json:
        print(json.dumps({"store": store_url, "failed": [{**f.to_json(), "path": f.path} for f in failures]}, indent=2))
        return
    if not failures:
        err.print(f"no failed cells in {store_url} (every failed cell has committed since, or none failed)")
        return
    table = Table(title=f"failed cells in {store_url}", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("cell", "failed at", "error"):
        table.add_column(column, overflow="fold")
    for failure in failures:
        at = f" (at {failure.where})" if failure.where else ""
        table.add_row(escape(failure.label), _when(failure), escape(failure.error + at))
    out.print(table)
    err.print("`sparsepipe logs CELL` prints a cell's whole traceback; `sparsepipe run` retries the failed cells")


def note_failed(backend: Store, manifests: list[Manifest]) -> None:
    """One line under `status` (which lists the committed `manifests`) when cells have failed since they committed."""
    failures = _open_failures(backend, manifests)
    if failures:
        names = ", ".join(f.label for f in failures[:3]) + (
            f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        )
        err.print(
            f"[red]{len(failures)} failed[/] cell(s), not committed since: {escape(names)}; "
            "`sparsepipe status --failed` lists them",
            soft_wrap=True,
            highlight=False,
        )


def logs(
    cell: Annotated[
        str,
        typer.Argument(
            metavar="CELL", help="The failed cell, as `status --failed` names it: STAGE/CELL, STAGE, or the cell alone."
        ),
    ],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the whole traceback of a failed cell's last attempt, kept in the store until the cell commits.

    Examples:

      sparsepipe logs prune/dense:bracket_counting

      sparsepipe logs report --store s3://bucket/runs
    """
    cfg = load_config(None, None, [], store)
    backend = open_store(cfg, STORE_READ)
    try:
        failure = find_failure(backend, cell)
    except StoreError as error:
        fail(str(error), EXIT_STORE)
    if failure is None:
        failed = [f.label for f in _open_failures(backend)]
        known = f"failed cells: {', '.join(failed)}" if failed else "no cell has an open failure"
        fail(f"no failure of {cell!r} in {cfg.store} ({known}; `sparsepipe status --failed` lists them)", EXIT_FAILED)
    if as_json:
        print(json.dumps({**failure.to_json(), "path": failure.path}, indent=2))
        return
    err.print(
        f"{escape(failure.label)} generation {failure.generation} key {failure.key[:12]} failed at {_when(failure)} "
        f"on {escape(failure.host)}: {escape(failure.error)}"
        + (f" (at {escape(failure.where)})" if failure.where else ""),
        highlight=False,
        soft_wrap=True,
    )
    err.print(f"kept in {failure.path}", highlight=False, soft_wrap=True)
    print(failure.traceback)
