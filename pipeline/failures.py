"""Failed cells: their traceback kept in the store, beside the cell's attempts, until the cell commits.

When a cell raises (or its worker dies), the driver writes `failure.json` into the progress area of the
generation it tried,

    <stage>/<key>/progress/<gen:04d>/failure.json

so a run on a cluster or a detached job leaves its tracebacks where a laptop reading the same store finds
them (`sparsepipe status --failed`, `sparsepipe logs CELL`). `gc` removes a progress folder only once its
generation is committed (`Store.finished_progress`), so a failure stays until its cell commits; listings
leave out the failures of cells committed since.

The record holds the one-line error, where it was raised (the innermost frame of this project's code) and
the whole traceback as the worker printed it.
"""

from __future__ import annotations

import json
import re
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from .store import Manifest, Store

FAILURE_FILE = "failure.json"
FAILURE_FORMAT = "sparsepipe.failure/1"
# The folder holding pipeline/, workers/, ...: frames below it are this project's code.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<function>\S+)')
_PROJECT_FOLDERS = ("pipeline", "workers", "kernels", "tasks", "infra", "tests")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the "ray::function()" line of a worker's traceback


@dataclass
class Failure:
    """One failed attempt of a cell."""

    stage: str
    cell: str
    key: str
    generation: int
    error: str  # the exception's own line, e.g. "RuntimeError: element 0 of tensors does not require grad"
    where: str | None  # "workers/prune/binarize.py:131 in refine_steps": the innermost frame of project code
    traceback: str
    failed_at: float
    host: str
    path: str = ""  # where the record is, as a store URL (filled in when read back)

    @property
    def label(self) -> str:
        return f"{self.stage}/{self.cell}" if self.cell else self.stage

    def one_line(self) -> str:
        """The error, where it was raised, and how to see the rest."""
        at = f" (at {self.where})" if self.where else ""
        return f"{self.error}{at}; traceback: `sparsepipe logs {self.label}`"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return {"format": FAILURE_FORMAT, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str = "") -> Failure:
        fields = {name: data.get(name) for name in cls.__dataclass_fields__ if name != "path"}
        return cls(**fields, path=path)


def short_error(error: BaseException) -> str:
    """The worker's own exception line, without Ray's wrapping."""
    cause = getattr(error, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if not type(error).__module__.startswith("ray."):  # raised here, not in a worker
        return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return lines[-1] if lines else type(error).__name__


def traceback_text(error: BaseException) -> str:
    """The whole traceback: a Ray error's text carries the worker's, formatted where it was raised."""
    import traceback

    text = _COLOUR.sub("", str(error)).strip()
    if 'File "' in text:
        return text
    return "".join(traceback.format_exception(error)).strip()


def _project_path(path: str) -> str | None:
    """`path` relative to this project (its folder here, or a copy installed elsewhere); None for others' code."""
    try:
        relative = Path(path).resolve().relative_to(PROJECT_ROOT).as_posix()
        return relative if relative.split("/", 1)[0] in _PROJECT_FOLDERS else None  # not a venv inside it
    except ValueError:
        pass
    parts = Path(path).parts
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "sparsepipe" and parts[index + 1] in _PROJECT_FOLDERS:
            return "/".join(parts[index + 1 :])
    return None


def raised_at(traceback: str) -> str | None:
    """The innermost frame of this project's code in a printed traceback, as "file:line in function"."""
    where = None
    for match in _FRAME.finditer(traceback):
        relative = _project_path(match["path"])
        if relative is not None:
            where = f"{relative}:{match['line']} in {match['function']}"
    return where


def failure_of(stage: str, cell: str, key: str, generation: int, error: BaseException) -> Failure:
    text = traceback_text(error)
    return Failure(
        stage=stage,
        cell=cell,
        key=key,
        generation=generation,
        error=short_error(error),
        where=raised_at(text),
        traceback=text,
        failed_at=time.time(),
        host=socket.gethostname(),
    )


def record_failure(store: Store, failure: Failure) -> str:
    """Write `failure` beside its cell's attempts; returns where, as a store URL."""
    area = store.progress_area(failure.stage, failure.key, failure.generation)
    with tempfile.TemporaryDirectory(prefix="sparsepipe-failure-") as folder:
        local = Path(folder) / FAILURE_FILE
        local.write_text(json.dumps(failure.to_json(), indent=1))
        area.put(FAILURE_FILE, local)
    return store.url_of(f"{area.root}/{FAILURE_FILE}")


def _read(store: Store, path: str) -> Failure | None:
    try:
        data = json.loads(store._io("reading a failure record", store.fs.cat_file, path))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FAILURE_FORMAT:
        return None
    return Failure.from_json(data, store.url_of(path))


def _records(store: Store, manifests: Iterable[Manifest] | None) -> list[tuple[str, Failure, bool]]:
    """Every failure record in the store: (its path, the failure, whether its cell has committed since)."""
    pattern = store._path("*", "*", "progress", "*", FAILURE_FILE)
    paths = store._io("listing failures", store.fs.glob, pattern)
    found = [(path, failure) for path, failure in ((p, _read(store, p)) for p in paths) if failure is not None]
    if not found:
        return []
    committed: dict[tuple[str, str], float] = {}
    for manifest in store.iter_manifests() if manifests is None else manifests:
        label = (manifest.stage, manifest.cell)
        committed[label] = max(committed.get(label, 0.0), float(manifest.data.get("committed_at") or 0.0))
    return [(p, f, committed.get((f.stage, f.cell), 0.0) >= f.failed_at) for p, f in found]


def closed_failures(store: Store, older_than_s: float = 0.0) -> list[str]:
    """The records of failures whose cell has committed since (possibly under another key, after a change),
    failed more than `older_than_s` ago: what `gc` removes."""
    now = time.time()
    return sorted(p for p, f, closed in _records(store, None) if closed and now - f.failed_at >= older_than_s)


def open_failures(store: Store, manifests: Iterable[Manifest] | None = None) -> list[Failure]:
    """The newest failure of every cell not committed since, newest first. `manifests`: the store's committed
    artifacts when the caller has already read them (else they are read here, only when there are failures)."""
    newest: dict[tuple[str, str], Failure] = {}
    for _, failure, closed in _records(store, manifests):
        label = (failure.stage, failure.cell)
        if closed:
            continue
        if label not in newest or failure.failed_at > newest[label].failed_at:
            newest[label] = failure
    return sorted(newest.values(), key=lambda f: f.failed_at, reverse=True)


def find_failure(store: Store, label: str) -> Failure | None:
    """The newest open failure of the cell named `label` ("prune/dense:bracket_counting", or "report"); a cell
    name without its stage ("dense:bracket_counting") is enough when one stage has a failed cell of that name."""
    failures = open_failures(store)
    exact = [f for f in failures if f.label == label]
    by_cell = [f for f in failures if f.cell == label]
    return exact[0] if exact else by_cell[0] if len(by_cell) == 1 else None
