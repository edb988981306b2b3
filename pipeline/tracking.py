"""Experiment tracking: the scalars a cell reports go to TensorBoard event files, and to MLflow or W&B.

A worker reports scalars inside its progress events (`WorkContext.report`):

    ctx.report({"completed": step, "total": steps, "description": "...", "scalars": {"train/loss": 3.2}})

with an optional "step" (default: "completed"). `Tracking` receives every event before the controller's
throttle, so no scalar is dropped. TensorBoard files (tensorboardX's writer: no TensorFlow, no tensorboard
server package) are written always, into `tensorboard/` of the cell's progress area while it runs and of its
artifact when it commits, so `tensorboard --logdir STORE` shows every run, running or done, local or synced.
They record how a run went, not what it computed: `TRACKER_RECORDS` keeps them out of the artifact's content
identity (pipeline/dag.py), like a stage's `records`.

`execution.trackers` adds MLflow (`mlflow`: the run is named after the cell, in experiment
$MLFLOW_EXPERIMENT_NAME or "sparsepipe", at $MLFLOW_TRACKING_URI) and Weights & Biases (`wandb`: project
$WANDB_PROJECT or "sparsepipe"; WANDB_MODE=offline works without an account). Both are optional extras
(`pip install 'sparsepipe[mlflow]'`, `'sparsepipe[wandb]'`).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any, Protocol

TENSORBOARD_DIR = "tensorboard"
TRACKER_RECORDS = (f"{TENSORBOARD_DIR}/*",)
TRACKERS = ("mlflow", "wandb")
SYNC_INTERVAL_S = 30.0  # how often running event files are copied into the progress area


class ProgressFiles(Protocol):
    def put(self, name: str, local_file: Path) -> None: ...


def missing_trackers(trackers: list[str] | tuple[str, ...]) -> list[str]:
    """The trackers whose package this Python cannot import."""
    return [name for name in trackers if importlib.util.find_spec(name) is None]


def event_scalars(event: dict[str, Any]) -> tuple[int, dict[str, float]] | None:
    """(step, scalars) of a progress event that carries scalars, else None."""
    scalars = event.get("scalars")
    if not scalars:
        return None
    step = event.get("step", event.get("completed", 0))
    return int(step or 0), {name: float(value) for name, value in scalars.items() if value is not None}


class _MLflow:
    def __init__(self, run_name: str, params: dict[str, Any]):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "sparsepipe")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=params).info.run_id

    def log(self, step: int, scalars: dict[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(name, value, stamp, step) for name, value in scalars.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, ok: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


class _WandB:
    def __init__(self, run_name: str, params: dict[str, Any]):
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "sparsepipe"), name=run_name, config=params, reinit="create_new"
        )

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self, ok: bool) -> None:
        self.run.finish(exit_code=0 if ok else 1)


FORWARDERS = {"mlflow": _MLflow, "wandb": _WandB}


class Tracking:
    """The trackers of one running cell. `observe(event)` for every progress event; `close` at the end."""

    def __init__(
        self,
        local_dir: Path,
        run_name: str,
        trackers: list[str] | tuple[str, ...] = (),
        tags: dict[str, Any] | None = None,
        progress: ProgressFiles | None = None,
    ):
        unknown = [name for name in trackers if name not in FORWARDERS]
        if unknown:
            raise ValueError(f"unknown trackers {unknown}; execution.trackers takes {', '.join(TRACKERS)}")
        missing = missing_trackers(trackers)
        if missing:
            raise ValueError(
                f"execution.trackers names {', '.join(missing)}, not installed where this cell runs: "
                f"pip install 'sparsepipe[{','.join(missing)}]'"
            )
        self.local_dir = Path(local_dir)
        self.run_name, self.trackers = run_name, tuple(trackers)
        self.tags = {name: str(value) for name, value in (tags or {}).items()}
        self.progress = progress
        self.writer: Any = None  # made with the first scalars: a cell that reports none leaves no files or runs
        self.forwarders: list[Any] = []
        self.last_sync = 0.0  # the first scalars reach the progress area at once

    def _open(self) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(self.local_dir), flush_secs=10)
        self.forwarders = [FORWARDERS[name](self.run_name, self.tags) for name in self.trackers]

    def observe(self, event: dict[str, Any]) -> None:
        found = event_scalars(event)
        if found is None:
            return
        step, scalars = found
        if self.writer is None:
            self._open()
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)
        for forwarder in self.forwarders:
            forwarder.log(step, scalars)
        if self.progress is not None and time.monotonic() - self.last_sync >= SYNC_INTERVAL_S:
            self.sync()

    def event_files(self) -> list[Path]:
        return sorted(path for path in self.local_dir.rglob("*") if path.is_file())

    def sync(self, flush: bool = True) -> None:
        """Copy the event files into the progress area (where `tensorboard --logdir STORE` sees a running cell)."""
        if flush:
            self.writer.flush()
        self.last_sync = time.monotonic()
        if self.progress is None:
            return
        for path in self.event_files():
            self.progress.put(f"{TENSORBOARD_DIR}/{path.relative_to(self.local_dir).as_posix()}", path)

    def close(self, out_dir: Path | None, ok: bool = True) -> None:
        """Flush everything; copy the event files into `out_dir`/tensorboard (the artifact) when it is given."""
        if self.writer is None:
            return
        self.writer.close()
        for forwarder in self.forwarders:
            forwarder.close(ok)
        self.sync(flush=False)
        if out_dir is not None:
            for path in self.event_files():
                target = Path(out_dir) / TENSORBOARD_DIR / path.relative_to(self.local_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
