"""status at 80 columns, gc of progress and scratch, selective planning, progress lines in logs
(issue 13 items 13, 15, 17, 18; issue 10 item 8)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.dag import HIT, RUN, Cell, CellPlan
from sparsepipe.pipeline.progress import ProgressView
from sparsepipe.pipeline.scratch import stale_scratch
from sparsepipe.pipeline.store import CommitRecord, StoreSpec

cli = CliRunner()

ROWS = [
    ("tokenize", "", {"documents": 1739, "train_tokens": 10234567, "val_tokens": 20345}),
    ("pretrain", "tiny", {"final_val_loss": 3.8212345, "bigram_val_loss": 4.5, "l0_by_param": {"a": 1.0}}),
    (
        "prune",
        "pretrain/tiny:set_or_string_fixedvarname",
        {
            "nodes": 41,
            "edges": 1234,
            "circuit_loss": 0.1412,
            "calibrated_loss": 0.12,
            "inverse_loss": 0.9,
            "reached_target": True,
        },
    ),
]


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """gc looks for scratch folders in the temp directory: give it one of its own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def filled_store(store_url, tmp_path):
    store = StoreSpec(store_url).open()
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.bin").write_bytes(b"x" * 5000)
    for number, (stage, cell, metrics) in enumerate(ROWS):
        record = CommitRecord(
            stage=stage,
            key=str(number) * 64,
            cell=cell,
            preimage={},
            parents={},
            metrics=metrics,
            started=1,
            finished=2,
        )
        store.commit(record, data, 0)
    return store_url, store


def test_status_fits_80_columns_with_a_headline_per_cell(filled_store, monkeypatch):
    url, _ = filled_store
    monkeypatch.setenv("COLUMNS", "80")
    result = cli.invoke(app, ["status", "--store", url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines if not line.startswith("report:")) <= 80
    assert any("edges=1234" in line for line in lines) and any("val_loss=3.821" in line for line in lines)
    assert "calibrated_loss" not in result.stdout  # full metrics only on request


def test_status_stage_and_json_show_every_metric(filled_store):
    url, _ = filled_store
    result = cli.invoke(app, ["status", "prune", "--store", url])
    assert result.exit_code == 0 and "calibrated_loss: 0.12" in result.stdout and "inverse_loss: 0.9" in result.stdout
    assert "tokenize" not in result.stdout
    data = json.loads(cli.invoke(app, ["status", "--json", "--store", url]).stdout)
    prune = next(a for a in data["artifacts"] if a["stage"] == "prune")
    assert prune["metrics"]["calibrated_loss"] == 0.12 and prune["damaged"] == []
    assert cli.invoke(app, ["status", "nosuchstage", "--store", url]).exit_code == 2


def test_piped_status_keeps_whole_cell_names(filled_store, monkeypatch):
    url, _ = filled_store
    monkeypatch.delenv("COLUMNS", raising=False)
    result = cli.invoke(app, ["status", "--store", url])
    assert "prune/pretrain/tiny:set_or_string_fixedvarname" in result.stdout


def test_gc_lists_then_removes_finished_progress_but_keeps_running_cells(filled_store, tmp_path):
    url, store = filled_store
    state = tmp_path / "state.bin"
    state.write_bytes(b"checkpoint")
    store.progress_area("pretrain", "1" * 64, 0).put("ckpt/state.bin", state)  # committed: removable
    store.progress_area("dense", "9" * 64, 0).put("ckpt/state.bin", state)  # not committed: a resumable cell
    dry = cli.invoke(app, ["gc", "--store", url, "--older-than", "0", "--dry-run"])
    assert dry.exit_code == 0
    listed = [line.split("\t") for line in dry.stdout.splitlines()]
    assert [kind for kind, _ in listed if kind != "scratch"] == ["progress"]
    assert listed[0][1].endswith(f"pretrain/{'1' * 64}/progress/0000")
    assert store.progress_area("pretrain", "1" * 64, 0).exists("ckpt/state.bin")  # dry run removes nothing
    result = cli.invoke(app, ["gc", "--store", url, "--older-than", "0", "--json"])
    assert len(json.loads(result.stdout)["removed"]["progress"]) == 1
    assert not store.progress_area("pretrain", "1" * 64, 0).exists("ckpt/state.bin")
    assert store.progress_area("dense", "9" * 64, 0).exists("ckpt/state.bin")


def test_gc_removes_scratch_folders_of_dead_workers(tmp_path):
    (tmp_path / "s").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = Path(tempfile.mkdtemp(prefix=f"sparsepipe-tokenize-{dead.pid}-"))
    alive = Path(tempfile.mkdtemp(prefix=f"sparsepipe-tokenize-{os.getpid()}-"))
    try:
        assert left in stale_scratch() and alive not in stale_scratch()
        result = cli.invoke(app, ["gc", "--store", str(tmp_path / "s"), "--older-than", "0"])
        assert result.exit_code == 0 and not left.exists() and alive.exists()
    finally:
        for path in (left, alive):
            if path.exists():
                path.rmdir()


def test_gc_removes_downloads_a_killed_process_left_in_the_cache(tmp_path, monkeypatch):
    (tmp_path / "s").mkdir()
    cache = tmp_path / "cache"
    monkeypatch.setenv("SPARSEPIPE_CACHE", str(cache))
    old, fresh, complete = cache / ".fetch-old", cache / ".fetch-fresh", cache / ("d" * 64)
    for folder in (old, fresh, complete):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "part.bin").write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for path in (old, old / "sub", old / "sub" / "part.bin", complete, complete / "sub", complete / "sub" / "part.bin"):
        os.utime(path, (two_hours_ago, two_hours_ago))
    os.utime(fresh, (two_hours_ago, two_hours_ago))  # its file is still being written: in flight
    dry = cli.invoke(app, ["gc", "--store", str(tmp_path / "s"), "--dry-run"])
    assert [line for line in dry.stdout.splitlines() if line.startswith("fetches")] == [f"fetches\t{old}"]
    result = cli.invoke(app, ["gc", "--store", str(tmp_path / "s"), "--json"])
    assert json.loads(result.stdout)["removed"]["fetches"] == [str(old)]
    assert not old.exists() and fresh.exists() and complete.exists()


def test_plan_prune_on_sparse_checkpoints_leaves_dense_out(tmp_path):
    result = cli.invoke(
        app,
        ["plan", "prune", "--preset", "smoke", "--checkpoints", "pretrain", "--store", str(tmp_path / "s"), "--json"],
    )
    assert result.exit_code == 0, result.output
    stages = [c["stage"] for c in json.loads(result.stdout)["cells"]]
    assert "dense" not in stages and "pretrain" in stages and "tokenize" in stages
    cells = [c["cell"] for c in json.loads(result.stdout)["cells"] if c["stage"] in ("mean_cache", "prune")]
    assert cells and all("dense" not in cell for cell in cells)
    full = json.loads(
        cli.invoke(app, ["plan", "full", "--preset", "smoke", "--store", str(tmp_path / "s"), "--json"]).stdout
    )
    assert "dense" in [c["stage"] for c in full["cells"]]  # a target in its own right


def test_progress_lines_for_logs(tmp_path):
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=False, width=200)
    cached = CellPlan(Cell("tokenize", "", {}), HIT, "committed generation 0")
    running = CellPlan(Cell("pretrain", "tiny", {}), RUN, "never built")
    with ProgressView(console) as view:
        view.start([cached, running])
        view.begin(running)
        event = {"completed": 200, "total": 600, "description": "resumed at step 200", "notes": ["resumed at step 200"]}
        view.update({"pretrain/tiny": event})
        view.update({"pretrain/tiny": {**event, "completed": 300, "description": "step 300"}})
        tokenize_task = view.bars.tasks[view.stage_tasks["tokenize"]]
        assert tokenize_task.finished and tokenize_task.finished_time is not None
        frozen = tokenize_task.elapsed
        time.sleep(0.05)
        assert tokenize_task.elapsed == frozen < 0.05  # a cached stage's clock does not run
        view.finish(running, ok=True)
    text = stream.getvalue()
    assert text.count("pretrain/tiny: resumed at step 200") == 1
    assert "tokenize cells (cached)" in text
