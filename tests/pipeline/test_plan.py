"""Planning: keys, HIT/RUN and the reason a cell must run."""

from __future__ import annotations

import sys
import textwrap

import pytest

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import HIT, RUN, Cell, CellRef, Planner, Registry, Stage
from sparsepipe.pipeline.execute import execute_unit
from sparsepipe.pipeline.fingerprint import clear_cache as clear_fingerprint_cache
from sparsepipe.pipeline.runner import Runner
from sparsepipe.pipeline.store import StoreSpec

STAGE_SOURCE = """
def run_source(ctx, params):
    import time
    (ctx.out_dir / "value.txt").write_text(str(params["seed"]) + VERSION)
    (ctx.out_dir / "timing.txt").write_text(repr(time.time()))  # a run record: differs on every run

def run_double(ctx, params):
    value = (ctx.input("source") / "value.txt").read_text()
    (ctx.out_dir / "double.txt").write_text(value * 2)

VERSION = "a"
"""


@pytest.fixture
def stage_module(tmp_path, monkeypatch):
    """A real module on disk whose source the stages fingerprint."""
    path = tmp_path / "plan_stages_demo.py"
    path.write_text(textwrap.dedent(STAGE_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("plan_stages_demo", None)
    clear_fingerprint_cache()
    yield path
    sys.modules.pop("plan_stages_demo", None)
    clear_fingerprint_cache()


def _registry() -> Registry:
    source = Stage(
        name="source",
        version="1",
        deps=(),
        cells=lambda cfg, up: [Cell("source", "", {"seed": cfg.tune.seed})],
        run="plan_stages_demo:run_source",
        records=("timing.txt",),
    )
    double = Stage(
        name="double",
        version="1",
        deps=("source",),
        cells=lambda cfg, up: [
            Cell("double", f"v{i}", {"i": i}, inputs={"source": CellRef("source")}) for i in range(2)
        ],
        run="plan_stages_demo:run_double",
        matrix=True,
    )
    return Registry([source, double])


def _run_in_process(registry, store, config, forced=frozenset(), stages=None):
    """Execute a plan without Ray, cell by cell, as the runner's units would."""
    planner = Planner(registry, store)
    committed = {}
    cells = registry.list_cells(config, registry.order)
    for name in stages or registry.order:
        for cell in cells[name]:
            plan = planner.plan_cell(cell, committed, set(), set(forced))
            if plan.status == RUN:
                raw, path, _ = execute_unit(
                    store.spec, Runner(registry, store, config)._request(plan, committed, False)
                )
                committed[cell.ref] = store.lookup(cell.stage, plan.key)
            else:
                committed[cell.ref] = plan.manifest


def _plan(registry, store, config, forced=frozenset()):
    return {(p.cell.stage, p.cell.cell): p for p in Planner(registry, store).plan(config, ["double"], set(forced))}


def test_first_plan_runs_everything_then_hits(stage_module, tmp_path):
    registry, store = _registry(), StoreSpec(str(tmp_path / "store")).open()
    config = resolve_config("smoke", environ={})
    plans = _plan(registry, store, config)
    assert plans[("source", "")].status == RUN and plans[("source", "")].reason == "never built"
    assert plans[("double", "v0")].status == RUN and "upstream source will run" in plans[("double", "v0")].reason
    _run_in_process(registry, store, config)
    assert all(p.status == HIT for p in _plan(registry, store, config).values())


def test_param_change_names_the_param(stage_module, tmp_path):
    registry, store = _registry(), StoreSpec(str(tmp_path / "store")).open()
    _run_in_process(registry, store, resolve_config("smoke", environ={}))
    changed = resolve_config("smoke", assignments=["tune.seed=7"], environ={})
    plans = _plan(registry, store, changed)
    assert plans[("source", "")].reason == "params changed: seed"
    assert plans[("double", "v0")].status == RUN


def test_code_change_is_detected(stage_module, tmp_path):
    registry, store = _registry(), StoreSpec(str(tmp_path / "store")).open()
    config = resolve_config("smoke", environ={})
    _run_in_process(registry, store, config)
    stage_module.write_text(stage_module.read_text().replace('VERSION = "a"', 'VERSION = "b"'))
    clear_fingerprint_cache()
    plans = _plan(registry, store, config)
    assert plans[("source", "")].reason == "code changed"


def test_upstream_change_and_force_make_downstream_rerun(stage_module, tmp_path):
    registry, store = _registry(), StoreSpec(str(tmp_path / "store")).open()
    config = resolve_config("smoke", environ={})
    _run_in_process(registry, store, config)
    before = {k: p.key for k, p in _plan(registry, store, config).items()}
    forced = _plan(registry, store, config, forced={"source"})
    assert forced[("source", "")].status == RUN and forced[("source", "")].reason == "--force (generation 1)"
    _run_in_process(registry, store, config, forced={"source"})
    after = _plan(registry, store, config)
    assert after[("source", "")].key == before[("source", "")]  # same key, new generation
    assert store.lookup("source", before[("source", "")]).generation == 1
    assert after[("double", "v0")].key != before[("double", "v0")]  # parent digest changed
    assert all(p.status == HIT for p in after.values())
    assert store.lookup("double", before[("double", "v0")]) is not None  # old artifacts stay untouched


def test_reason_names_the_changed_upstream(stage_module, tmp_path):
    registry, store = _registry(), StoreSpec(str(tmp_path / "store")).open()
    config = resolve_config("smoke", environ={})
    _run_in_process(registry, store, config)
    _run_in_process(registry, store, config, forced={"source"}, stages=["source"])
    plans = _plan(registry, store, config)
    assert plans[("source", "")].status == HIT
    assert plans[("double", "v0")].status == RUN and plans[("double", "v0")].reason == "upstream source changed"


def test_same_code_and_data_give_the_same_keys_in_any_store(stage_module, tmp_path):
    """Upstreams enter a key by content identity: commit time, attempt, pid and run records do not matter."""
    registry, config = _registry(), resolve_config("smoke", environ={})
    keys = []
    for name in ("a", "b"):
        store = StoreSpec(str(tmp_path / name)).open()
        _run_in_process(registry, store, config)
        plans = _plan(registry, store, config)
        assert all(p.status == HIT for p in plans.values())
        keys.append({k: p.key for k, p in plans.items()})
    assert keys[0] == keys[1]


def test_a_changed_output_file_changes_downstream_keys(stage_module, tmp_path):
    """The same upstream key with different file content (a nondeterministic stage) is a different input."""
    from sparsepipe.pipeline.dag import content_identity
    from sparsepipe.pipeline.store import Manifest

    manifest = Manifest(
        raw=(
            b'{"key": "k", "generation": 0, "files": {"value.txt": {"sha256": "aa", "size": 1}, "timing.txt": '
            b'{"sha256": "bb", "size": 1}}}'
        ),
        path="x",
    )
    other = Manifest(raw=manifest.raw.replace(b'"aa"', b'"cc"'), path="y")
    timing = Manifest(raw=manifest.raw.replace(b'"bb"', b'"dd"') + b" ", path="z")
    assert content_identity(manifest) != content_identity(other)
    assert content_identity(manifest, ("timing.txt",)) == content_identity(timing, ("timing.txt",))
    assert content_identity(manifest) != content_identity(timing)
