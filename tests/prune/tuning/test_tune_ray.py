"""A tuned cell on a real local Ray instance: the trials of an iteration run at the same time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tune_toys import SETTINGS, TASK

from sparsepipe.pipeline.execute import ray_submit
from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.config import PruneConfig, TuneConfig
from sparsepipe.workers.prune.stage import TUNED_CELL_CPUS, run_prune_cell

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    # Test modules are not importable in Ray's workers: ship this one's functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        num_cpus=4,
        object_store_memory=100 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray
    ray.shutdown()


def run_cell(inputs: dict[str, Path], out: Path, prune: PruneConfig, tune: TuneConfig) -> dict:
    """The cell as the pipeline runs it: a Ray task of its own whose trials are nested Ray tasks."""
    ctx = local_context(out, inputs=inputs, submit=ray_submit, cell=f"pretrain/toy:{TASK}")
    run_prune_cell(ctx, {"task": TASK, "prune": prune.model_dump(mode="json"), "tune": tune.model_dump(mode="json")})
    return ctx.metrics


def test_the_trials_of_an_iteration_overlap_in_time(ray_instance, cell_inputs, tmp_path):
    ray = ray_instance
    tune = TuneConfig(iterations=1, trials_per_iteration=4, cpus_per_trial=1)
    # One trial per task; trials outlast the workers' staggered start by seconds.
    prune = SETTINGS.model_copy(update={"steps": 40, "trials_per_task": 1})
    metrics = ray.get(
        ray.remote(run_cell).options(num_cpus=TUNED_CELL_CPUS).remote(cell_inputs, tmp_path / "out", prune, tune)
    )
    log = metrics["trial_log"]
    assert len(log) == 4 and metrics["trials_resumed"] == 0
    assert max(e["start"] for e in log) < min(e["end"] for e in log), [(e["start"], e["end"]) for e in log]
    assert {e["node"] for e in log} == {ray.get_runtime_context().get_node_id()[:12]}
    assert (tmp_path / "out" / "circuit.json").exists() and (tmp_path / "out" / "trials.jsonl").exists()


def test_an_iteration_runs_as_tasks_of_trials_trained_together(ray_instance, cell_inputs, tmp_path):
    ray = ray_instance
    tune = TuneConfig(iterations=1, trials_per_iteration=4, cpus_per_trial=1)
    prune = SETTINGS.model_copy(update={"trials_per_task": 2})
    metrics = ray.get(
        ray.remote(run_cell).options(num_cpus=TUNED_CELL_CPUS).remote(cell_inputs, tmp_path / "out", prune, tune)
    )
    records = [json.loads(line) for line in (tmp_path / "out" / "trials.jsonl").read_text().splitlines()]
    assert len(records) == len(metrics["trial_log"]) == 4 and all(r["error"] is None for r in records)
    assert [r["trained_together"] for r in records] == [2, 2, 2, 2]
    assert len({(r["start"], r["end"]) for r in records}) == 2  # two tasks, two trials each
