"""Stages meet by kind: a new checkpoint stage, or a new reader of every checkpoint, is its Stage record plus
one registry line; mean_cache, prune and the controller pick it up through `provides` / `dep_kinds`."""

from __future__ import annotations

import pytest

from sparsepipe.pipeline.artifacts import providers
from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import Registry
from sparsepipe.workers.checkpoints import CHECKPOINT, checkpoint_refs
from sparsepipe.workers.registry import STAGES
from sparsepipe.workers.stage import Cell, Stage

# A checkpoint stage as the controls engineer's random_init: reads pretrain and dense, provides checkpoints.
THROWAWAY_CHECKPOINTS = Stage(
    name="throwaway_init",
    version="1",
    deps=("pretrain", "dense"),
    cells=lambda config, upstream: [
        Cell("throwaway_init", "scrambled", {}, {"model": c.ref}) for c in upstream["dense"]
    ],
    run="sparsepipe.workers.mean_cache.stage:run_mean_cache_cell",
    matrix=True,
    provides=(CHECKPOINT,),
)

# A stage that reads every checkpoint, whichever stage made it.
THROWAWAY_READER = Stage(
    name="throwaway_reader",
    version="1",
    deps=(),
    dep_kinds=(CHECKPOINT,),
    cells=lambda config, upstream: [
        Cell("throwaway_reader", str(ref), {}, {"checkpoint": ref}) for ref in checkpoint_refs(upstream)
    ],
    run="sparsepipe.workers.mean_cache.stage:run_mean_cache_cell",
    matrix=True,
)


def _registry(*extra: Stage) -> Registry:
    """The registered stages plus `extra`: what one more line in workers/registry.py gives."""
    return Registry([*STAGES, *extra])


@pytest.fixture(scope="module")
def config():
    return resolve_config("smoke", assignments=["tune.enabled=false", "prune.controls=[]"], environ={})


def test_a_reader_of_every_checkpoint_depends_on_each_provider_but_not_itself():
    registry = _registry(THROWAWAY_CHECKPOINTS, THROWAWAY_READER)
    checkpoint_stages = providers(registry, CHECKPOINT)
    assert "throwaway_init" in checkpoint_stages and "pretrain" in checkpoint_stages
    for reader in ("mean_cache", "prune", "throwaway_reader"):
        assert set(checkpoint_stages) <= set(registry.deps(reader))
    assert "throwaway_init" not in registry.deps("throwaway_init")
    assert registry.order.index("throwaway_init") < registry.order.index("mean_cache")


def test_a_provider_depending_on_its_own_kind_is_not_its_own_dep():
    both = Stage(
        name="refined",
        version="1",
        deps=(),
        dep_kinds=(CHECKPOINT,),
        provides=(CHECKPOINT,),
        cells=lambda config, upstream: [],
        run="sparsepipe.workers.mean_cache.stage:run_mean_cache_cell",
    )
    registry = _registry(both)
    assert "refined" not in registry.deps("refined") and "pretrain" in registry.deps("refined")


def test_mean_cache_prune_and_a_new_reader_list_the_new_checkpoints(config):
    registry = _registry(THROWAWAY_CHECKPOINTS, THROWAWAY_READER)
    cells = registry.list_cells(config, registry.order)
    new = "throwaway_init/scrambled"
    assert new in {c.cell for c in cells["mean_cache"]}
    assert {c.cell for c in cells["prune"] if c.cell.startswith(new + ":")} == {
        f"{new}:{task}" for task in config.prune.tasks
    }
    assert [c.cell for c in cells["throwaway_reader"]] == [str(c.ref) for c in cells.of_kind(CHECKPOINT)]
    assert new in [c.cell for c in cells["throwaway_reader"]]


def test_named_only_stages_are_left_out_of_all_but_selectable_by_name(config):
    named = Stage(
        name="throwaway_named",
        version="1",
        deps=(),
        cells=lambda config, upstream: [Cell("throwaway_named", "one", {})],
        run="sparsepipe.workers.mean_cache.stage:run_mean_cache_cell",
        matrix=True,
        provides=(CHECKPOINT,),
        named_only=True,
    )
    registry = _registry(named)
    cells = registry.list_cells(config, registry.order)
    assert "throwaway_named/one" not in {c.cell for c in cells["mean_cache"]}
    chosen = resolve_config("smoke", assignments=['prune.checkpoints=["throwaway_named"]'], environ={})
    cells = registry.list_cells(chosen, registry.order)
    assert [c.cell for c in cells["mean_cache"]] == ["throwaway_named/one"]
