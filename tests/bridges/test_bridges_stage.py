"""The bridges stage in the pipeline: its checkpoint is pruned, the intervention curve is written, plan lists
its cells (and their prune cells), and unbuildable configs fail at plan time with exit 2 naming the keys."""

from __future__ import annotations

import json
import re
import shutil
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
from sparsepipe.workers.interventions.worker import run_circuit_intervention
from sparsepipe.workers.mean_cache.config import MeanCacheConfig
from sparsepipe.workers.nn.config import SparsityConfig, TrainConfig
from sparsepipe.workers.prune.config import PruneConfig
from sparsepipe.workers.prune.result import CIRCUIT_FILE, RESULT_FILE
from sparsepipe.workers.prune.worker import run_prune

runner = CliRunner()


@pytest.fixture(scope="module")
def bridged_and_pruned(tmp_path_factory) -> dict[str, Path]:
    """A bridges cell trained for a few steps, its mean cache and its prune cell of stage_inputs.TASK."""
    tmp_path = tmp_path_factory.mktemp("bridged")
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
        interventions=InterventionConfig(tasks=[stage_inputs.TASK, "no_such_task_name"], **INTERVENTION_SIZES),
    )
    bridged = local_context(tmp_path / "bridges", inputs={"tokens": tokens, "dense": dense})
    run_bridges(bridged, config)
    means = tmp_path / "mean_cache"
    stage_inputs.write_mean_cache(means, tokens, bridged.out_dir, MeanCacheConfig(batches=2, batch_size=4))
    pruned = local_context(
        tmp_path / "prune",
        inputs={"checkpoint": bridged.out_dir, "tokens": tokens, "mean_cache": means},
        cell="bridges/base",
    )
    run_prune(pruned, PRUNE_PARAMS, stage_inputs.TASK)
    return {
        "tokens": tokens,
        "dense": dense,
        "bridges": bridged.out_dir,
        "mean_cache": means,
        "circuit": pruned.out_dir,
        "metrics": bridged.metrics,
    }


INTERVENTION_SIZES = {"pairs": 4, "strengths": 3, "reference_batches": 1, "controls": 3}
PRUNE_PARAMS = PruneConfig(
    steps=4,
    batch_pairs=4,
    eval_pairs=8,
    train_pool_pairs=16,
    max_tokens=stage_inputs.N_CTX,
    curve_points=0,
)


def test_the_bridged_checkpoint_is_mean_cached_and_pruned(bridged_and_pruned):
    done, out = bridged_and_pruned["metrics"]["interventions"], bridged_and_pruned["bridges"]
    assert "skipped" in done["no_such_task_name"]
    if "skipped" not in done[stage_inputs.TASK]:  # pairs of equal token length exist under this tokenizer
        curve = json.loads((out / "interventions" / f"{stage_inputs.TASK}.json").read_text())
        assert len(curve["strengths"]) == 3 and curve["node"].startswith("0.attn.act_in[")
        assert (out / "interventions" / f"{stage_inputs.TASK}.png").exists()
    pruned = bridged_and_pruned["circuit"]
    assert (pruned / CIRCUIT_FILE).exists() and (pruned / RESULT_FILE).exists()


def with_kept(circuit: Path, folder: Path, kept: dict[str, list[int]]) -> Path:
    """A copy of a prune cell's outputs whose circuit is `kept` (the ranking reads result.json's kept nodes)."""
    shutil.copytree(circuit, folder)
    result = json.loads((folder / RESULT_FILE).read_text())
    (folder / RESULT_FILE).write_text(json.dumps({**result, "kept": kept}))
    return folder


def test_the_interventions_cell_steers_through_the_circuit_node_that_ablation_ranks_first(bridged_and_pruned, tmp_path):
    kept = {"0.attn.act_in": [1, 4, 6], "0.attn.q": [0, 1], "0.mlp.act_in": [2]}
    inputs = {**bridged_and_pruned, "circuit": with_kept(bridged_and_pruned["circuit"], tmp_path / "circuit", kept)}
    inputs.pop("metrics")
    ctx = local_context(tmp_path / "steer", inputs=inputs, cell="bridges/base:" + stage_inputs.TASK)
    settings = InterventionConfig(tasks=[stage_inputs.TASK], **INTERVENTION_SIZES)
    run_circuit_intervention(ctx, stage_inputs.TASK, settings, batch_size=4)
    assert "skipped" not in ctx.metrics, ctx.metrics
    ranking = json.loads((ctx.out_dir / "ranking.json").read_text())
    assert ranking["split"] == "val"
    ranked = ranking["nodes"]
    assert {row["node"] for row in ranked} == {
        "0.attn.act_in[1]",
        "0.attn.act_in[4]",
        "0.attn.act_in[6]",
        "0.mlp.act_in[2]",
    }
    assert [row["increase"] for row in ranked] == sorted((row["increase"] for row in ranked), reverse=True)
    curve = json.loads((ctx.out_dir / "interventions" / f"{stage_inputs.TASK}.json").read_text())
    assert curve["node"] == ranked[0]["node"] and ctx.metrics["node_rank"] == 0
    assert curve["channel_choice"] == "largest single-node ablation (val)"
    assert len(curve["control_channels"]) == 3 and curve["control_channels"][0] == curve["control_channel"]
    for control in curve["control_channels"]:  # the random-channel controls are off the circuit
        location, _, channel = control.partition("[")
        assert location == curve["node"].partition("[")[0] and int(channel.rstrip("]")) not in kept.get(location, [])
    assert len(curve["prob_counterfactual_random_direction"]) == 3 == len(curve["control_shifts_random_direction"])
    assert ctx.metrics["shift"] == curve["shift"] and ctx.metrics["controls"] == 6
    assert ctx.metrics["controls_at_or_above"] == sum(
        shift >= curve["shift"]
        for shift in curve["control_shifts_random_channel"] + curve["control_shifts_random_direction"]
    )


def test_a_circuit_with_more_read_nodes_than_the_cap_ablates_the_first_order_top_ones(bridged_and_pruned, tmp_path):
    kept = {"0.attn.act_in": [1, 4, 6], "0.mlp.act_in": [2, 3]}
    inputs = {**bridged_and_pruned, "circuit": with_kept(bridged_and_pruned["circuit"], tmp_path / "circuit", kept)}
    inputs.pop("metrics")
    rankings = {}
    for cap in (2, 5):
        ctx = local_context(tmp_path / f"cap{cap}", inputs=inputs, cell="bridges/base:" + stage_inputs.TASK)
        settings = InterventionConfig(tasks=[stage_inputs.TASK], rank_max_nodes=cap, **INTERVENTION_SIZES)
        run_circuit_intervention(ctx, stage_inputs.TASK, settings, batch_size=4)
        rankings[cap] = json.loads((ctx.out_dir / "ranking.json").read_text())
        assert ctx.metrics["circuit_read_nodes"] == 5
    assert (rankings[2]["read_nodes"], rankings[2]["ablated"], rankings[5]["ablated"]) == (5, 2, 5)
    exact = {row["node"]: row["loss_without"] for row in rankings[5]["nodes"]}
    for row in rankings[2]["nodes"]:  # the same single-node ablations, for the two the estimate put first
        assert row["loss_without"] == pytest.approx(exact[row["node"]], rel=1e-6)


def test_a_circuit_without_a_read_node_is_a_skipped_intervention_naming_the_setting(bridged_and_pruned, tmp_path):
    inputs = {
        **bridged_and_pruned,
        "circuit": with_kept(bridged_and_pruned["circuit"], tmp_path / "c", {"0.attn.q": [0]}),
    }
    inputs.pop("metrics")
    ctx = local_context(tmp_path / "steer", inputs=inputs, cell="bridges/base:" + stage_inputs.TASK)
    settings = InterventionConfig(tasks=[stage_inputs.TASK], **INTERVENTION_SIZES)
    run_circuit_intervention(ctx, stage_inputs.TASK, settings, batch_size=4)  # a result, not a failed cell
    assert re.search("keeps no node at a post-norm read.*bridges.interventions.nodes", ctx.metrics["skipped"])
    assert not (ctx.out_dir / "interventions").exists()


def plan_cells(args: list[str], tmp_path: Path):
    return runner.invoke(app, ["plan", "prune", "--preset", "smoke", "--store", str(tmp_path / "s"), "--json", *args])


def test_plan_lists_bridges_cells_and_their_prune_cells(tmp_path):
    result = plan_cells(["--set", "tune.enabled=false"], tmp_path)
    assert result.exit_code == 0, result.output
    cells = {(c["stage"], c["cell"]) for c in json.loads(result.stdout)["cells"]}
    assert ("bridges", "smoke") in cells and ("mean_cache", "bridges/smoke") in cells
    assert ("prune", "bridges/smoke:single_double_quote") in cells
    full = runner.invoke(
        app,
        [
            "plan",
            "report",
            "--preset",
            "smoke",
            "--store",
            str(tmp_path / "s"),
            "--json",
            "--set",
            "tune.enabled=false",
        ],
    )
    cells = {(c["stage"], c["cell"]) for c in json.loads(full.stdout)["cells"]}
    steered = {cell for stage, cell in cells if stage == "interventions"}  # where a bridges prune cell of the task is
    assert "bridges/smoke:single_double_quote" in steered and all(c.startswith("bridges/smoke:") for c in steered)


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
