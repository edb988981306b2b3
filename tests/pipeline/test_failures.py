"""Failed cells (issue 26): their traceback kept in the store until they commit, and a stage built from what succeeded.

A demo pipeline runs in-process (the same execute_unit a Ray unit calls, the same record the runner writes):
a matrix stage whose cell "bad" raises while DEMO_FAIL is set, and a summary stage that accepts failed inputs.
The end-to-end run through Ray is tests/pipeline/test_e2e_failures.py.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import textwrap

import pytest
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import HIT, RUN, Cell, CellRef, Planner, Registry, Stage
from sparsepipe.pipeline.execute import execute_unit
from sparsepipe.pipeline.failures import FAILURE_FILE, Failure, open_failures, raised_at, record_failure, short_error
from sparsepipe.pipeline.fingerprint import clear_cache as clear_fingerprint_cache
from sparsepipe.pipeline.runner import CellOutcome, Runner
from sparsepipe.pipeline.store import StoreSpec

cli = CliRunner()
CONFIG = resolve_config("smoke", environ={})

STAGE_SOURCE = """
import os

def check(value):
    if value == "bad" and os.environ.get("DEMO_FAIL"):
        raise ValueError(f"cell {value} cannot be built")

def run_part(ctx, params):
    check(ctx.cell)
    (ctx.out_dir / "part.txt").write_text(ctx.cell)

def run_summary(ctx, params):
    built = {name: (folder / "part.txt").read_text() for name, folder in ctx.inputs.items()}
    (ctx.out_dir / "summary.json").write_text(
        __import__("json").dumps({"built": built, "failed": ctx.failed_inputs}, sort_keys=True)
    )
"""


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """gc also looks for scratch folders in the temp directory: give it one of its own."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


@pytest.fixture
def demo(tmp_path, monkeypatch):
    (tmp_path / "failures_demo.py").write_text(textwrap.dedent(STAGE_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPARSEPIPE_CACHE", str(tmp_path / "cache"))
    sys.modules.pop("failures_demo", None)
    clear_fingerprint_cache()
    part = Stage(
        name="part",
        version="1",
        deps=(),
        cells=lambda cfg, up: [Cell("part", name, {}) for name in ("good", "bad")],
        run="failures_demo:run_part",
        matrix=True,
    )
    summary = Stage(
        name="summary",
        version="1",
        deps=("part",),
        cells=lambda cfg, up: [Cell("summary", "", {}, inputs={c.cell: c.ref for c in up["part"]})],
        run="failures_demo:run_summary",
        accepts_failed_inputs=True,
    )
    yield Registry([part, summary])
    sys.modules.pop("failures_demo", None)
    clear_fingerprint_cache()


def _run(registry, store):
    """What Runner.run does for each cell, in order and in this process: returns {cell label: outcome}."""
    runner = Runner(registry, store, CONFIG)
    cells = registry.list_cells(CONFIG, registry.order)
    committed, failed, outcomes = {}, {}, {}
    for name in registry.order:
        for cell in cells[name]:
            plan = runner.planner.plan_cell(cell, committed, set(), set(), failed)
            outcome = CellOutcome(plan, manifest=plan.manifest)
            if plan.status != HIT:
                try:
                    raw, path, _ = execute_unit(store.spec, runner._request(plan, committed, False, failed))
                    outcome.manifest = store.lookup(cell.stage, plan.key)
                except ValueError as error:
                    runner._keep_failure(outcome, error)
                    failed[cell.ref] = outcome.error
            if outcome.manifest is not None:
                committed[cell.ref] = outcome.manifest
            outcomes[str(cell.ref)] = outcome
    return outcomes


def test_a_failed_cell_keeps_its_traceback_until_it_commits_and_the_summary_is_built_anyway(
    demo, store_url, monkeypatch
):
    store = StoreSpec(store_url).open()
    monkeypatch.setenv("DEMO_FAIL", "1")
    first = _run(demo, store)
    bad = first["part/bad"]
    assert bad.error == "ValueError: cell bad cannot be built"
    assert bad.where.startswith("pipeline/execute.py:")  # the innermost project frame (the demo is no project code)
    assert "Traceback" in bad.traceback and "in run_part" in bad.traceback
    assert bad.failure_record.endswith(f"/progress/0000/{FAILURE_FILE}")
    assert "`sparsepipe logs part/bad`" in bad.failure_line()

    summary = first["summary"]
    assert summary.ok and summary.plan.status == RUN
    built = json.loads((store.materialize(summary.manifest) / "summary.json").read_text())
    assert built == {"built": {"good": "good"}, "failed": {"bad": "ValueError: cell bad cannot be built"}}
    assert summary.manifest.data["parents"].keys() == {"good"}

    # Found from any machine reading the store: status --failed and logs.
    listed = cli.invoke(app, ["status", "--failed", "--json", "--store", store_url])
    assert listed.exit_code == 0, listed.output
    (record,) = json.loads(listed.stdout)["failed"]
    assert (record["stage"], record["cell"], record["error"]) == ("part", "bad", bad.error)
    table = cli.invoke(app, ["status", "--failed", "--store", store_url])
    assert "part/bad" in table.stdout and "cell bad cannot be built" in table.stdout
    assert "1 failed cell(s), not committed since: part/bad" in cli.invoke(app, ["status", "--store", store_url]).stderr
    logs = cli.invoke(app, ["logs", "part/bad", "--store", store_url])
    assert logs.exit_code == 0 and "Traceback" in logs.stdout and "in check\n    raise ValueError" in logs.stdout
    assert cli.invoke(app, ["logs", "bad", "--store", store_url]).stdout == logs.stdout  # the cell name alone
    unknown = cli.invoke(app, ["logs", "part/good", "--store", store_url])
    assert unknown.exit_code == 1 and "failed cells: part/bad" in unknown.stderr

    # gc keeps the record while the cell has not committed; a cell that committed since under another key (its
    # code or params changed) has its old failure removed.
    stale = Failure("part", "good", "0" * 64, 0, "E: before a change", None, "...", failed_at=1.0, host="h")
    stale_record = record_failure(store, stale)
    gc = cli.invoke(app, ["gc", "--store", store_url, "--older-than", "0", "--json"])
    assert gc.exit_code == 0, gc.output
    bad_progress = bad.failure_record.rsplit("/", 2)[0].split("://")[-1]
    # the committed cells' finished progress (their live records) may go; the failed cell's stays
    assert not any(bad_progress in removed for removed in json.loads(gc.stdout)["removed"]["progress"])
    (removed,) = json.loads(gc.stdout)["removed"]["failures"]
    assert store.url_of(removed) == stale_record and not store.fs.exists(removed)
    assert [f.label for f in open_failures(store)] == ["part/bad"]

    # The same failure again: the summary's key is the same (it hashes the error), so it is not rebuilt.
    again = _run(demo, store)
    assert again["summary"].plan.status == HIT and again["part/good"].plan.status == HIT

    # Fixed: only the failed cell and the summary run; the record is no longer listed, and gc removes it.
    monkeypatch.delenv("DEMO_FAIL")
    fixed = _run(demo, store)
    assert {label for label, o in fixed.items() if o.plan.status != HIT} == {"part/bad", "summary"}
    assert "upstream bad changed" in fixed["summary"].plan.reason
    built = json.loads((store.materialize(fixed["summary"].manifest) / "summary.json").read_text())
    assert built == {"built": {"bad": "bad", "good": "good"}, "failed": {}}
    assert open_failures(store) == []
    assert cli.invoke(app, ["status", "--failed", "--store", store_url]).exit_code == 0
    gc = cli.invoke(app, ["gc", "--store", store_url, "--older-than", "0", "--json"])
    removed = json.loads(gc.stdout)["removed"]["progress"]  # with the committed cells' live records
    assert any(bad_progress in folder for folder in removed)
    assert not any(store.fs.exists(f"{folder}/{FAILURE_FILE}") for folder in removed)
    assert json.loads(gc.stdout)["removed"]["failures"] == []


def test_a_stage_that_does_not_accept_failed_inputs_waits_for_them(demo, tmp_path):
    store = StoreSpec(str(tmp_path / "store")).open()
    planner = Planner(demo, store)
    strict = Registry([demo["part"], dataclasses.replace(demo["summary"], accepts_failed_inputs=False)])
    cell = Cell("summary", "", {}, inputs={"bad": CellRef("part", "bad")})
    failed = {CellRef("part", "bad"): "ValueError: no"}
    assert Planner(strict, store).plan_cell(cell, {}, set(), set(), failed).key is None
    accepted = planner.plan_cell(cell, {}, set(), set(), failed)
    assert accepted.key is not None and accepted.preimage["inputs"] == {"bad": "failed: ValueError: no"}
    other = planner.plan_cell(cell, {}, set(), set(), {CellRef("part", "bad"): "ValueError: other"})
    assert other.key != accepted.key


def test_where_is_the_innermost_frame_of_project_code():
    traceback = (
        "ray::run_unit() (pid=1, ip=10.0.0.2)\n"
        '  File "/opt/venv/site-packages/sparsepipe/pipeline/execute.py", line 180, in execute_unit\n'
        '  File "/home/me/sparsepipe/workers/prune/binarize.py", line 131, in refine_steps\n'
        '  File "/opt/venv/site-packages/torch/_tensor.py", line 648, in backward\n'
        "RuntimeError: element 0 of tensors does not require grad and does not have a grad_fn"
    )
    assert raised_at(traceback) == "workers/prune/binarize.py:131 in refine_steps"
    assert raised_at('  File "/usr/lib/python3.11/json/decoder.py", line 3, in decode\n') is None

    class RayLike(Exception):
        cause = KeyError("x")

    assert short_error(RayLike("a\nlong\nwrapped text")) == "KeyError: 'x'"
    assert short_error(RuntimeError("one line")) == "RuntimeError: one line"
