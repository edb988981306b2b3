"""The bridges stage in the pipeline: its checkpoint is pruned, the intervention curve is written, plan lists
its cells (and their prune cells), and unbuildable configs fail at plan time with exit 2 naming the keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bridge_toys import stage_inputs
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import default_registry
from sparsepipe.workers.bridges.config import BridgesConfig, InterventionConfig
from sparsepipe.workers.bridges.worker import run_bridges
from sparsepipe.workers.checkpoints import selected_checkpoints
from sparsepipe.workers.context import local_context
from sparsepipe.workers.mean_cache.config import MeanCacheConfig
from sparsepipe.workers.nn.config import SparsityConfig, TrainConfig
from sparsepipe.workers.prune.config import PruneConfig
from sparsepipe.workers.prune.result import CIRCUIT_FILE, RESULT_FILE
from sparsepipe.workers.prune.worker import run_prune

runner = CliRunner()


def test_the_bridged_checkpoint_is_mean_cached_and_pruned(tmp_path):
    tokens = stage_inputs.write_tokens(tmp_path / "tokens")
    dense = stage_inputs.write_checkpoint(tmp_path / "dense")
    model = stage_inputs.model_config().model_copy(update={"vocab_size": None})
    config = BridgesConfig(
        enabled=True,
        train=TrainConfig(
            model=model,
            sparsity=SparsityConfig(target_l0=0.25),
            batch_size=4,
            steps=4,
            eval_every=2,
            eval_batches=1,
            checkpoint_every=2,
        ),
        interventions=InterventionConfig(
            tasks=[stage_inputs.TASK, "no_such_task_name"], pairs=4, strengths=3, reference_batches=1
        ),
    )
    bridged = local_context(tmp_path / "bridges", inputs={"tokens": tokens, "dense": dense})
    run_bridges(bridged, config)
    out = bridged.out_dir

    done = bridged.metrics["interventions"]
    assert "skipped" in done["no_such_task_name"]
    if "skipped" not in done[stage_inputs.TASK]:  # pairs of equal token length exist under this tokenizer
        curve = json.loads((out / "interventions" / f"{stage_inputs.TASK}.json").read_text())
        assert len(curve["strengths"]) == 3 and curve["node"].startswith("0.attn.act_in[")
        assert (out / "interventions" / f"{stage_inputs.TASK}.png").exists()

    params = PruneConfig(
        steps=4,
        batch_pairs=4,
        eval_pairs=8,
        train_pool_pairs=16,
        max_tokens=stage_inputs.N_CTX,
        curve_points=0,
    )
    means = tmp_path / "mean_cache"
    stage_inputs.write_mean_cache(means, tokens, out, MeanCacheConfig(batches=2, batch_size=4))
    ctx = local_context(
        tmp_path / "prune", inputs={"checkpoint": out, "tokens": tokens, "mean_cache": means}, cell="bridges/base"
    )
    run_prune(ctx, params, stage_inputs.TASK)
    assert (ctx.out_dir / CIRCUIT_FILE).exists() and (ctx.out_dir / RESULT_FILE).exists()


def plan_cells(args: list[str], tmp_path: Path):
    return runner.invoke(app, ["plan", "prune", "--preset", "smoke", "--store", str(tmp_path / "s"), "--json", *args])


def test_plan_lists_bridges_cells_and_their_prune_cells(tmp_path):
    result = plan_cells(["--set", "tune.enabled=false"], tmp_path)
    assert result.exit_code == 0, result.output
    cells = {(c["stage"], c["cell"]) for c in json.loads(result.stdout)["cells"]}
    assert ("bridges", "smoke") in cells and ("mean_cache", "bridges/smoke") in cells
    assert ("prune", "bridges/smoke:single_double_quote") in cells


def test_checkpoints_bridges_selects_only_the_bridged_models():
    config = resolve_config("smoke", assignments=['prune.checkpoints=["bridges"]'], environ={})
    registry = default_registry()
    upstream = registry.list_cells(config, registry.closure(["dense", "pretrain", "bridges"]))
    assert [str(ref) for ref in selected_checkpoints(config.prune.checkpoints, upstream)] == ["bridges/smoke"]
    config = resolve_config("smoke", assignments=['prune.checkpoints=["all"]'], environ={})
    assert "bridges/smoke" in [str(ref) for ref in selected_checkpoints(config.prune.checkpoints, upstream)]


@pytest.mark.parametrize(
    "assignments, named",
    [
        (["dense.enabled=false"], ["bridges.enabled", "dense.enabled"]),
        (
            ["bridges.train.model.n_ctx=64"],
            ["bridges.train.model.n_ctx=64", "dense.train.model.n_ctx=128", "tokenize.n_ctx=128"],
        ),
        (
            ["bridges.train.model.vocab_size=4096"],
            ["bridges.train.model.vocab_size=4096", "dense.train.model.vocab_size=2048"],
        ),
        (["bridges.train.model.n_layer=2"], ["bridges.train.model.n_layer=2", "dense.train.model.n_layer=1"]),
    ],
)
def test_unbuildable_bridges_fail_at_plan_time_naming_the_keys(assignments, named, tmp_path):
    result = plan_cells([arg for a in assignments for arg in ("--set", a)], tmp_path)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for key in named:
        assert key in text, (key, text)
