"""The code fingerprint covers every project module a cell's run function reaches, and nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparsepipe.pipeline.dag import default_registry
from sparsepipe.pipeline.fingerprint import code_fingerprint, import_closure

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("pipeline", "workers", "kernels", "tasks", "infra")


@pytest.fixture
def sources(tmp_path) -> dict[str, Path]:
    """A copy of the project's sources, to edit without touching the checkout."""
    roots = {}
    for folder in FOLDERS:
        roots[folder] = tmp_path / folder
        shutil.copytree(ROOT / folder, roots[folder], ignore=shutil.ignore_patterns("__pycache__"))
    return roots


def _fingerprints(roots: dict[str, Path]) -> dict[str, str]:
    return {
        name: code_fingerprint(stage.run.partition(":")[0], roots) for name, stage in default_registry().stages.items()
    }


def _touch(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\n# one more byte\n")


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_copy_fingerprints_like_the_checkout(sources):
    """The copy hashes the same bytes as the installed package, so the edits below are all that changes."""
    registry = default_registry()
    assert _fingerprints(sources) == {
        name: code_fingerprint(s.run.partition(":")[0]) for name, s in registry.stages.items()
    }


def test_worker_context_is_in_every_stage(sources):
    before = _fingerprints(sources)
    _touch(sources["workers"] / "context.py")
    assert _changed(before, _fingerprints(sources)) == set(before)


# Every stage that runs the model: those that provide a checkpoint (build, train or import one) and those
# that read every checkpoint (mean_cache, prune).
MODEL_STAGES = {
    name
    for name, stage in default_registry().stages.items()
    if "checkpoint" in stage.provides or "checkpoint" in stage.dep_kinds
} | {"interventions"}  # steers the bridged sparse and the dense models


def test_node_location_list_reaches_every_model_stage(sources):
    """nn/config.py holds NODE_LOCATIONS, which the model slices by position: every stage that runs the model
    sees it."""
    before = _fingerprints(sources)
    _touch(sources["workers"] / "nn" / "config.py")
    assert _changed(before, _fingerprints(sources)) == MODEL_STAGES


def test_deep_module_reached_only_through_lazy_imports(sources):
    """The kernels are imported by the model, which the stage module imports inside a function."""
    before = _fingerprints(sources)
    _touch(sources["kernels"] / "select_torch.py")
    assert _changed(before, _fingerprints(sources)) == MODEL_STAGES


def test_a_task_definition_changes_only_the_stages_that_run_tasks(sources):
    """Prune and the interventions (A.4, in bridges and after pruning) run tasks; nothing else does."""
    before = _fingerprints(sources)
    _touch(sources["tasks"] / "definitions" / "with_open.py")
    assert _changed(before, _fingerprints(sources)) == {"prune", "bridges", "interventions"}


def test_modules_outside_the_closure_change_nothing(sources):
    before = _fingerprints(sources)
    _touch(sources["pipeline"] / "cli.py")
    _touch(sources["workers"] / "carbs" / "bench.py")
    _touch(sources["workers"] / "tokenize" / "bench.py")
    (sources["workers"] / "train" / "unused_helper.py").write_text("X = 1\n")
    assert _fingerprints(sources) == before


def test_closure_of_the_prune_stage():
    closure = import_closure("sparsepipe.workers.prune.stage")
    for module in (
        "sparsepipe.workers.context",
        "sparsepipe.workers.nn.config",
        "sparsepipe.workers.nn.gpt",
        "sparsepipe.workers.prune.tuning",
        "sparsepipe.workers.carbs.tuner",
        "sparsepipe.workers.mean_cache.means",
        "sparsepipe.tasks.definitions.bracket_counting",
        "sparsepipe.kernels.abstopk",
    ):
        assert module in closure
    assert not any(name.startswith("sparsepipe.pipeline") for name in closure), "a worker imports the controller"
    # prune reads the mean cache's file format, not the code that computes it.
    assert "sparsepipe.workers.mean_cache.worker" not in closure


def test_prune_settings_leave_the_mean_cache_key_unchanged(sources):
    """mean_cache has its own config section and imports no prune module: editing prune's config (a viewer
    description, a default) re-keys prune cells, never a mean cache."""
    before = _fingerprints(sources)
    _touch(sources["workers"] / "prune" / "config.py")
    changed = _changed(before, _fingerprints(sources))
    assert "prune" in changed and "mean_cache" not in changed
