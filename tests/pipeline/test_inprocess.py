"""Runs without Ray (pipeline/inprocess.py), and a cell that runs out of GPU memory (pipeline/oom.py)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import Cell, CellRef, Registry, Stage
from sparsepipe.pipeline.fingerprint import clear_cache as clear_fingerprint_cache
from sparsepipe.pipeline.inprocess import local_submit, run_in_process
from sparsepipe.pipeline.oom import is_out_of_memory
from sparsepipe.pipeline.store import StoreSpec
from sparsepipe.workers.stage import ConfigError, Resources

STAGE_SOURCE = """
from sparsepipe.workers.estimate import CellCost

def run_source(ctx, params):
    squares = ctx.submit([(pow, (n, 2), {"num_cpus": 1}) for n in range(3)])
    (ctx.out_dir / "value.txt").write_text(str(sum(squares)))

def run_hungry(ctx, params):
    import torch
    if params["oom"]:
        (ctx.out_dir / "partial.txt").write_text("half")
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    (ctx.out_dir / "value.txt").write_text((ctx.input("source") / "value.txt").read_text())

def run_after(ctx, params):
    (ctx.out_dir / "value.txt").write_text("after")

def estimate_hungry(cell, config, cells, device_type):
    return CellCost(flops=1e15, param_bytes=2 * 10**9, optimizer_bytes=6 * 10**9, activation_bytes=40 * 10**9,
                    reduce=("lower hungry.batch_size", "raise execution.train_workers"))
"""


@pytest.fixture
def stage_module(tmp_path, monkeypatch):
    (tmp_path / "inprocess_demo.py").write_text(textwrap.dedent(STAGE_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("inprocess_demo", None)
    clear_fingerprint_cache()
    yield
    sys.modules.pop("inprocess_demo", None)
    clear_fingerprint_cache()


def registry(oom: bool, workers: int = 1) -> Registry:
    source = Stage("source", "1", (), lambda c, u: [Cell("source", "", {})], "inprocess_demo:run_source")
    hungry = Stage(
        "hungry",
        "1",
        ("source",),
        lambda c, u: [Cell("hungry", "", {"oom": oom}, {"source": CellRef("source")}, Resources(workers=workers))],
        "inprocess_demo:run_hungry",
        estimate="inprocess_demo:estimate_hungry",
    )
    after = Stage(
        "after",
        "1",
        ("hungry",),
        lambda c, u: [Cell("after", "", {}, {"h": CellRef("hungry")})],
        "inprocess_demo:run_after",
    )
    return Registry([source, hungry, after])


def test_cells_run_in_this_process_and_submitted_units_too(stage_module, tmp_path):
    store = StoreSpec(str(tmp_path / "store")).open()
    report = run_in_process(registry(oom=False), store, resolve_config("smoke", environ={}), ["after"], set())
    assert not report.failed and len(report.outcomes) == 3
    hungry = store.lookup("hungry", next(o.manifest.key for o in report.outcomes if o.plan.cell.stage == "hungry"))
    assert (store.materialize(hungry) / "value.txt").read_text() == "5"  # 0 + 1 + 4 through ctx.submit
    again = run_in_process(registry(oom=False), store, resolve_config("smoke", environ={}), ["after"], set())
    assert all(o.plan.status == "HIT" for o in again.outcomes)


def test_cuda_out_of_memory_is_one_line_and_commits_nothing(stage_module, tmp_path):
    store = StoreSpec(str(tmp_path / "store")).open()
    report = run_in_process(registry(oom=True), store, resolve_config("smoke", environ={}), ["after"], set())
    by_stage = {o.plan.cell.stage: o for o in report.outcomes}
    assert by_stage["source"].ok
    hungry = by_stage["hungry"]
    assert hungry.out_of_memory and not hungry.ok
    assert "\n" not in hungry.error
    assert hungry.error.startswith("hungry ran out of GPU memory: it needs about 48.00 GB")
    assert "lower hungry.batch_size, or raise execution.train_workers" in hungry.error
    assert by_stage["after"].skipped_because == "upstream hungry failed"
    assert [m.stage for m in store.scan_manifests()] == ["source"]


def test_out_of_memory_is_recognised_through_a_ray_wrapper():
    torch = pytest.importorskip("torch")

    class Wrapped(Exception):  # what Ray's RayTaskError holds: the worker's exception as `cause`
        def __init__(self, cause):
            super().__init__("ray task failed")
            self.cause = cause

    assert is_out_of_memory(Wrapped(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")))
    assert not is_out_of_memory(Wrapped(RuntimeError("shape mismatch")))


def test_data_parallel_cells_need_ray(stage_module, tmp_path):
    store = StoreSpec(str(tmp_path / "store")).open()
    with pytest.raises(ConfigError, match="execution.train_workers"):
        run_in_process(registry(oom=False, workers=2), store, resolve_config("smoke", environ={}), ["after"], set())


def test_local_submit_reports_each_result():
    seen = []
    assert local_submit([(abs, (-2,), {}), (abs, (-3,), {})], lambda i, r: seen.append((i, r))) == [2, 3]
    assert seen == [(0, 2), (1, 3)]


def test_run_exits_1_on_out_of_memory_and_commits_nothing(tmp_path, monkeypatch):
    """`sparsepipe run` where Ray is absent runs in process; a cell raising CUDA OOM ends it with exit 1."""
    from typer.testing import CliRunner

    import sparsepipe.pipeline.cli as cli
    import sparsepipe.workers.tokenize.stage as tokenize_stage

    def out_of_memory(ctx, params):
        (ctx.out_dir / "partial.txt").write_text("half")
        raise __import__("torch").cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(cli, "ray_installed", lambda: False)
    monkeypatch.setattr(tokenize_stage, "run_tokenize_cell", out_of_memory)
    store = tmp_path / "store"
    result = CliRunner().invoke(cli.app, ["run", "tokenize", "--preset", "smoke", "--store", str(store)])
    assert result.exit_code == 1, result.output
    assert "Ray is not installed here" in result.stderr
    assert "tokenize ran out of GPU memory: it needs about" in result.stderr
    assert list(StoreSpec(str(store)).open().scan_manifests()) == []
