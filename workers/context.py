"""What a stage's worker function receives: local folders in, a local folder out.

The pipeline builds a `WorkContext` for every unit of work (a stage, or one cell
of a matrix stage) and hands it to the worker function.  Workers never see the
store: inputs arrive as local folders, everything written under `out_dir`
becomes the artifact, and `progress` keeps resumable state that survives a
killed run (it lives in the store under the cell's key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol


class ProgressArea(Protocol):
    """Durable scratch space for one cell: checkpoints, tuner state, trial results."""

    def put(self, name: str, local_file: Path) -> None:
        """Store `local_file` under `name` (replacing an earlier version)."""

    def get(self, name: str, local_file: Path) -> bool:
        """Copy `name` to `local_file`; False when it was never stored."""

    def exists(self, name: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...


class LocalProgressArea:
    """A ProgressArea on a local folder; used by tests and by local stores."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, name: str, local_file: Path) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(Path(local_file).read_bytes())
        os.replace(tmp, target)

    def get(self, name: str, local_file: Path) -> bool:
        source = self.root / name
        if not source.exists():
            return False
        Path(local_file).parent.mkdir(parents=True, exist_ok=True)
        Path(local_file).write_bytes(source.read_bytes())
        return True

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def list(self, prefix: str = "") -> list[str]:
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and str(p.relative_to(self.root)).startswith(prefix)
        )


class InputHandle(Protocol):
    """A picklable reference to a committed input that any node can turn into a local folder."""

    def local_path(self) -> Path: ...


@dataclass(frozen=True)
class LocalInput:
    path: Path

    def local_path(self) -> Path:
        return self.path


def _ignore_event(event: dict[str, Any]) -> None:
    return None


@dataclass
class WorkContext:
    """Everything one unit of work may touch.

    - `inputs[name]`: local folder holding the committed files of upstream `name`.
    - `out_dir`: local folder; every file written here is committed as the artifact.
    - `progress`: resumable state for this cell (see ProgressArea).
    - `metrics`: filled by the worker; recorded in the MANIFEST (JSON-serialisable).
    - `report(event)`: progress events for the controller's bars, e.g.
      `{"completed": 120, "total": 1000, "description": "loss 3.21"}`. An event may carry
      `"scalars": {"train/loss": 3.21}` (and a "step", default "completed"): they go to the cell's
      TensorBoard files, live status and trackers (pipeline/tracking.py, pipeline/live.py), unthrottled.
    - `num_threads`: CPUs this unit was given; torch is already limited to it.
    - `device`: "cuda" when the unit was given a GPU, else "cpu".
    - `workers`: > 1 for a data-parallel unit: that many workers, each with `num_threads`
      CPUs and `gpus_per_worker` GPUs (the unit itself holds none).
    - `handle(name)`: a picklable InputHandle for units sent to other nodes.
    - `failed_inputs[name]`: the one-line error of each input that failed, for a stage that
      `accepts_failed_inputs` (it runs without them); empty otherwise.
    - `submit(calls, on_result=None)`: runs (function, args, resources) calls
      concurrently on the cluster (Ray tasks under the pipeline) and returns their
      results in order, calling `on_result(index, result)` as each finishes.  None
      outside the pipeline: use `run_calls`, which falls back to running them here.
    """

    out_dir: Path
    inputs: dict[str, Path] = field(default_factory=dict)
    progress: ProgressArea | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    report: Callable[[dict[str, Any]], None] = _ignore_event
    num_threads: int = 1
    device: str = "cpu"
    workers: int = 1
    gpus_per_worker: float = 0.0
    cell: str = ""
    submit: Callable[..., list[Any]] | None = None
    handles: dict[str, InputHandle] = field(default_factory=dict)
    failed_inputs: dict[str, str] = field(default_factory=dict)

    def input(self, name: str) -> Path:
        try:
            return self.inputs[name]
        except KeyError:
            raise KeyError(f"this stage has no input named {name!r}; it has {sorted(self.inputs)}") from None

    def handle(self, name: str) -> InputHandle:
        """For work sent to other nodes (ctx.submit): a reference that fetches the input where it runs."""
        return self.handles.get(name) or LocalInput(self.input(name))


def run_calls(
    ctx: WorkContext,
    calls: list[tuple[Callable[..., Any], tuple, dict[str, Any]]],
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Run calls through ctx.submit when the pipeline gave one, else one after another in this process."""
    if ctx.submit is not None:
        return ctx.submit(calls, on_result=on_result)
    results = []
    for number, (function, args, _) in enumerate(calls):
        results.append(function(*args))
        if on_result is not None:
            on_result(number, results[-1])
    return results


def local_context(
    out_dir: Path, inputs: dict[str, Path] | None = None, progress_dir: Path | None = None, **kwargs: Any
) -> WorkContext:
    """A WorkContext on plain folders, for tests and scripts that call a worker directly."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = LocalProgressArea(
        progress_dir if progress_dir is not None else out_dir.parent / (out_dir.name + ".progress")
    )
    return WorkContext(
        out_dir=out_dir, inputs={k: Path(v) for k, v in (inputs or {}).items()}, progress=progress, **kwargs
    )
