"""Damaged data is never served or built on (issue 13, items 1-3 and 12), on a local folder and a real S3 server.

A two-stage demo pipeline runs in-process (the same execute_unit a Ray unit calls), so every
check below goes through the real store code; the CLI's verify/status/gc run in-process on it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
import textwrap

import pytest
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import DAMAGED, HIT, RUN, Cell, CellRef, Planner, Registry, Stage
from sparsepipe.pipeline.execute import checked_input, execute_unit
from sparsepipe.pipeline.fingerprint import clear_cache as clear_fingerprint_cache
from sparsepipe.pipeline.runner import Runner
from sparsepipe.pipeline.store import Manifest, StoreError, StoreSpec

cli = CliRunner()

STAGE_SOURCE = """
def run_source(ctx, params):
    for number in range(3):
        (ctx.out_dir / f"shard-{number}.bin").write_bytes(bytes([number + 1]) * (100 + number))

def run_total(ctx, params):
    folder = ctx.input("source")
    values = [sum(p.read_bytes()) for p in sorted(folder.glob("shard-*.bin"))]
    (ctx.out_dir / "total.txt").write_text(str(values))
"""


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """gc also looks for scratch folders in the temp directory: give it one of its own."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


@pytest.fixture
def demo(tmp_path, monkeypatch):
    (tmp_path / "integrity_demo.py").write_text(textwrap.dedent(STAGE_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPARSEPIPE_CACHE", str(tmp_path / "cache"))
    sys.modules.pop("integrity_demo", None)
    clear_fingerprint_cache()
    source = Stage(
        name="source",
        version="1",
        deps=(),
        cells=lambda cfg, up: [Cell("source", "", {})],
        run="integrity_demo:run_source",
    )
    total = Stage(
        name="total",
        version="1",
        deps=("source",),
        cells=lambda cfg, up: [Cell("total", "", {}, inputs={"source": CellRef("source")})],
        run="integrity_demo:run_total",
    )
    yield Registry([source, total])
    sys.modules.pop("integrity_demo", None)
    clear_fingerprint_cache()


CONFIG = resolve_config("smoke", environ={})


def _plans(registry, store):
    return {p.cell.stage: p for p in Planner(registry, store).plan(CONFIG, ["total"])}


def _build(registry, store):
    """Plan and execute every non-HIT cell in order, as the runner's units would (no Ray)."""
    planner = Planner(registry, store)
    committed = {}
    for name in registry.order:
        for cell in registry.list_cells(CONFIG, [name])[name]:
            plan = planner.plan_cell(cell, committed, set(), set())
            if plan.status != HIT:
                raw, path, _ = execute_unit(
                    store.spec, Runner(registry, store, CONFIG)._request(plan, committed, False)
                )
                committed[cell.ref] = Manifest(raw=raw, path=path)
            else:
                committed[cell.ref] = plan.manifest
    return committed


def _attempt(store, manifest) -> str:
    return f"{store.artifact_dir(manifest.stage, manifest.key)}/attempts/{manifest.attempt}"


def _damage(store, manifest, how: str) -> None:
    folder = _attempt(store, manifest)
    if how == "flip":  # same size, different bytes
        data = bytearray(store.fs.cat_file(f"{folder}/shard-1.bin"))
        data[10] ^= 0xFF
        store.fs.pipe_file(f"{folder}/shard-1.bin", bytes(data))
    elif how == "swap":
        a, b = store.fs.cat_file(f"{folder}/shard-0.bin"), store.fs.cat_file(f"{folder}/shard-1.bin")
        store.fs.pipe_file(f"{folder}/shard-0.bin", b)
        store.fs.pipe_file(f"{folder}/shard-1.bin", a)
    elif how == "delete":
        store.fs.rm(f"{folder}/shard-2.bin")


@pytest.mark.parametrize("how", ["flip", "swap", "delete"])
def test_damaged_artifact_is_damaged_not_hit_and_rebuilt(demo, store_url, how):
    store = StoreSpec(store_url).open()
    committed = _build(demo, store)
    source = committed[CellRef("source")]
    assert {p.status for p in _plans(demo, store).values()} == {HIT}
    _damage(store, source, how)

    plans = _plans(demo, store)
    assert plans["source"].status == DAMAGED and "shard-" in plans["source"].reason and plans["source"].generation == 1
    assert plans["total"].status == RUN  # never built on the damaged upstream

    # The worker checks its inputs too: a stage handed the damaged artifact refuses it.  (An intact copy
    # cached from S3 before the damage would be served, correctly; drop it so the store's copy is read.)
    shutil.rmtree(os.environ["SPARSEPIPE_CACHE"], ignore_errors=True)
    total_cell = demo.list_cells(CONFIG, ["source", "total"])["total"][0]
    request = Runner(demo, store, CONFIG)._request(
        Planner(demo, store).plan_cell(total_cell, committed, set(), {"total"}), committed, False
    )
    with pytest.raises(StoreError, match="does not match its manifest"):
        execute_unit(store.spec, request)

    status = cli.invoke(app, ["status", "--store", store_url, "--json"])
    assert status.exit_code == 0, status.output
    damaged = {a["stage"]: a["damaged"] for a in json.loads(status.stdout)["artifacts"]}
    assert damaged["source"] and not damaged["total"]
    verify = cli.invoke(app, ["verify", "--store", store_url])
    assert verify.exit_code == 1 and "CORRUPT" in verify.output and "rebuilds it as generation 1" in verify.output

    rebuilt = _build(demo, store)
    assert rebuilt[CellRef("source")].generation == 1
    assert {p.status for p in _plans(demo, store).values()} == {HIT}
    assert cli.invoke(app, ["verify", "--store", store_url]).exit_code == 0  # the damaged generation is superseded


@pytest.mark.parametrize(
    "content", [b"half", b"", b"{}", b"[1, 2]"], ids=["truncated", "empty", "empty-object", "list"]
)
def test_unusable_manifest_is_reported_skipped_superseded_and_protects_gc(demo, store_url, content):
    store = StoreSpec(store_url).open()
    committed = _build(demo, store)
    source = committed[CellRef("source")]
    if content == b"half":
        content = source.raw[: len(source.raw) // 2]
    store.fs.pipe_file(source.path, content)

    assert store.lookup("source", source.key) is None
    verify = cli.invoke(app, ["verify", "--store", store_url])
    assert verify.exit_code == 1 and "UNREADABLE" in verify.output and "MANIFEST.0000.json" in verify.output
    assert "Traceback" not in verify.output
    for command in (["status"], ["status", "--json"]):
        result = cli.invoke(app, [*command, "--store", store_url])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        assert "skipping" in result.stderr
    gc = cli.invoke(app, ["gc", "--store", store_url, "--older-than", "0", "--json"])
    assert gc.exit_code == 0 and json.loads(gc.stdout)["removed"]["attempts"] == []
    assert store.fs.exists(f"{_attempt(store, source)}/shard-0.bin")

    plans = _plans(demo, store)
    assert (
        plans["source"].status == RUN
        and plans["source"].generation == 1
        and "MANIFEST.0000.json" in plans["source"].reason
    )
    rebuilt = _build(demo, store)
    assert rebuilt[CellRef("source")].generation == 1
    assert {p.status for p in _plans(demo, store).values()} == {HIT}
    verify = cli.invoke(app, ["verify", "--store", store_url])
    assert verify.exit_code == 0 and "superseded" in verify.output, verify.output


def test_force_supersedes_an_unreadable_newest_generation(demo, tmp_path):
    store = StoreSpec(str(tmp_path / "store")).open()
    committed = _build(demo, store)
    source = committed[CellRef("source")]
    broken = source.path.replace("MANIFEST.0000", "MANIFEST.0001")
    store.fs.pipe_file(broken, b"")  # a newer generation that cannot be read
    assert store.lookup("source", source.key).generation == 0
    plan = Planner(demo, store).plan(CONFIG, ["source"], {"source"})[0]
    assert plan.status == RUN and plan.generation == 2


def test_manifest_is_as_readable_as_the_data(demo, tmp_path):
    previous = os.umask(0o022)
    try:
        store = StoreSpec(str(tmp_path / "store")).open()
        source = _build(demo, store)[CellRef("source")]
    finally:
        os.umask(previous)
    manifest_mode = stat.S_IMODE(os.stat(source.path).st_mode)
    data_mode = stat.S_IMODE(os.stat(f"{_attempt(store, source)}/shard-0.bin").st_mode)
    assert manifest_mode == data_mode == 0o644


def test_full_check_when_written_on_another_host(demo, tmp_path):
    """Same size, no timestamp change: only a re-hash finds it, done when another host wrote the files."""
    store = StoreSpec(str(tmp_path / "store")).open()
    source = _build(demo, store)[CellRef("source")]
    path = f"{_attempt(store, source)}/shard-1.bin"
    before = os.stat(path)
    data = bytearray(open(path, "rb").read())
    data[0] ^= 0xFF
    open(path, "wb").write(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    # ctime moved, so the quick check still re-hashes this file:
    assert store.check(source) and store.check(source, full=True)
    elsewhere = json.loads(source.raw)
    elsewhere["provenance"]["host"] = "another-node"
    with pytest.raises(StoreError, match="shard-1.bin: sha256"):
        checked_input(store, "source", Manifest(raw=json.dumps(elsewhere).encode(), path=source.path), full=False)
