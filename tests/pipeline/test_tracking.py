"""Trackers: TensorBoard event files in the progress area and the artifact, the same scalars in an MLflow file
store and a W&B offline run; `execution.trackers` refuses a tracker that is not installed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tracking_events import read_scalars, read_wandb_history

from sparsepipe.pipeline.config import ConfigError, resolve_config
from sparsepipe.pipeline.tracking import TENSORBOARD_DIR, Tracking, missing_trackers
from sparsepipe.workers.context import LocalProgressArea

EVENTS = [
    {"completed": 1, "total": 3, "description": "loss 2.0", "scalars": {"train/loss": 2.0, "train/lr": 0.1}},
    {"completed": 2, "total": 3, "description": "no scalars"},
    {"completed": 3, "total": 3, "scalars": {"train/loss": 1.5, "val/loss": 1.75}},
    {"step": 7, "scalars": {"prune/nodes": 12.0}},
]
EXPECTED = {
    "train/loss": [(1, 2.0), (3, 1.5)],
    "train/lr": [(1, 0.1)],
    "val/loss": [(3, 1.75)],
    "prune/nodes": [(7, 12.0)],
}


def _track(tmp_path: Path, trackers: list[str]) -> tuple[Path, Path]:
    progress, out = tmp_path / "progress", tmp_path / "out"
    tracking = Tracking(
        tmp_path / "scratch", "pretrain/smoke", trackers, {"stage": "pretrain"}, LocalProgressArea(progress)
    )
    for event in EVENTS:
        tracking.observe(event)
    tracking.close(out)
    return progress, out


def test_tensorboard_files_hold_every_reported_scalar_in_the_progress_area_and_the_artifact(tmp_path):
    progress, out = _track(tmp_path, [])
    (artifact_file,) = (out / TENSORBOARD_DIR).glob("events.out.tfevents.*")
    (progress_file,) = (progress / TENSORBOARD_DIR).glob("events.out.tfevents.*")
    scalars = read_scalars(artifact_file)
    assert {tag: [(s, pytest.approx(v)) for s, v in rows] for tag, rows in scalars.items()} == EXPECTED
    assert progress_file.read_bytes() == artifact_file.read_bytes()


def test_a_cell_without_scalars_writes_no_tensorboard_files(tmp_path):
    tracking = Tracking(tmp_path / "scratch", "tokenize", [], progress=LocalProgressArea(tmp_path / "progress"))
    tracking.observe({"completed": 1, "total": 2, "description": "shards"})
    tracking.close(tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list((tmp_path / "progress").iterdir())


def test_mlflow_file_store_receives_the_same_scalars(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "sparsepipe-test")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store in maintenance mode
    _track(tmp_path, ["mlflow"])
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("sparsepipe-test").experiment_id])
    assert run.info.run_name == "pretrain/smoke" and run.info.status == "FINISHED"
    assert run.data.tags["stage"] == "pretrain"
    for tag, rows in EXPECTED.items():
        history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, tag)]
        assert sorted(history) == [(s, pytest.approx(v)) for s, v in rows]


def test_wandb_offline_run_receives_the_scalars(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    _track(tmp_path, ["wandb"])
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    name, rows = read_wandb_history(run_file)
    for _ in range(40):  # W&B's service process may still be writing the file after finish() returns
        if name is not None and rows:
            break
        time.sleep(0.5)
        name, rows = read_wandb_history(run_file)
    logged = sorted((tag, int(row["_step"]), float(row[tag])) for row in rows for tag in row if tag[0] != "_")
    assert name == "pretrain/smoke"
    expected = sorted((tag, step, value) for tag, pairs in EXPECTED.items() for step, value in pairs)
    assert [(t, s) for t, s, _ in logged] == [(t, s) for t, s, _ in expected]
    assert [v for *_, v in logged] == pytest.approx([v for *_, v in expected])


def test_execution_trackers_refuses_one_that_is_not_installed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert missing_trackers(["wandb"]) == ["wandb"]
    with pytest.raises(ConfigError, match=r"wandb not installed here: pip install 'sparsepipe\[wandb\]'"):
        resolve_config("smoke", None, ['execution.trackers=["wandb"]'])
    with pytest.raises(ConfigError, match="execution.trackers"):
        resolve_config("smoke", None, ['execution.trackers=["tensorflow"]'])


def test_a_units_reporter_pickles_to_the_controllers_channel_alone(tmp_path):
    """Data-parallel cells send ctx.report to their Ray Train ranks: the writer and the live record stay here."""
    import cloudpickle

    from sparsepipe.pipeline.execute import _Reporter
    from sparsepipe.pipeline.live import LiveStatus
    from sparsepipe.pipeline.store import StoreSpec

    store = StoreSpec(str(tmp_path / "store")).open()
    tracking = Tracking(tmp_path / "scratch", "pretrain/smoke", [], progress=LocalProgressArea(tmp_path / "progress"))
    live = LiveStatus(store.progress_area("pretrain", "k" * 64, 0), "pretrain", "smoke", "k" * 64, 0)
    forwarded: list[dict] = []
    reporter = _Reporter(tracking, live, forwarded.append)
    reporter(EVENTS[0])
    assert forwarded == [EVENTS[0]] and live.record["scalars"] == EVENTS[0]["scalars"] and tracking.writer is not None
    tracking.close(None)
    assert cloudpickle.loads(cloudpickle.dumps(reporter)).__name__ == "append"  # the bare channel, picklable
