"""The mean-cache and prune stage workers on a saved tiny checkpoint and a tiny tokenize artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from stage_inputs import (
    N_CTX,
    SMALL_MEANS,
    TASK,
    small_prune_config,
    write_checkpoint,
    write_mean_cache,
    write_tokens,
)

from sparsepipe.workers.context import local_context
from sparsepipe.workers.mean_cache.means import MEANS_FILE, load_means
from sparsepipe.workers.nn.gpt import load_checkpoint, node_locations
from sparsepipe.workers.prune.inputs import load_prune_inputs
from sparsepipe.workers.prune.trial import add_loss_vs_k, run_trial
from sparsepipe.workers.prune.worker import run_prune
from sparsepipe.workers.shard_loader import ShardLoader

PARAMS = small_prune_config()


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory) -> Path:
    return write_tokens(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="module")
def mean_cache_dir(tmp_path_factory, tokens_dir, checkpoint_dir) -> Path:
    out = tmp_path_factory.mktemp("mean_cache")
    metrics = write_mean_cache(out, tokens_dir, checkpoint_dir, SMALL_MEANS)
    assert metrics["batches"] == 3 and metrics["tokens"] == 3 * 4 * N_CTX
    return out


def test_mean_cache_holds_the_mean_of_every_node_location(mean_cache_dir, tokens_dir, checkpoint_dir):
    means = load_means(mean_cache_dir)
    model = load_checkpoint(checkpoint_dir).eval()
    assert {name: t.shape[0] for name, t in means.items()} == dict(node_locations(model.config))
    loader = ShardLoader(tokens_dir, "train", SMALL_MEANS.batch_size, seed=SMALL_MEANS.seed)
    batches = [loader.next_batch() for _ in range(SMALL_MEANS.batches)]
    with torch.no_grad():
        _, recorded = model(torch.cat(batches)[:, :-1], record=["0.mlp.post_act"])
    assert torch.allclose(means["0.mlp.post_act"], recorded["0.mlp.post_act"].mean(dim=(0, 1)), atol=1e-6)
    assert (mean_cache_dir / MEANS_FILE).exists()


def test_prune_stage_writes_every_output(tmp_path, tokens_dir, checkpoint_dir, mean_cache_dir):
    events = []
    inputs = {"checkpoint": checkpoint_dir, "tokens": tokens_dir, "mean_cache": mean_cache_dir}
    ctx = local_context(tmp_path / "out", inputs=inputs, report=events.append, cell="pretrain/tiny")
    run_prune(ctx, PARAMS, TASK)

    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"circuit.json", "circuit.html", "result.json", "loss_vs_k.png"}
    metrics = ctx.metrics
    required = {
        "nodes",
        "edges",
        "target_loss",
        "circuit_loss",
        "calibrated_loss",
        "full_model_loss",
        "inverse_loss",
        "random_circuit_loss",
        "reached_target",
        "total_nodes",
    }
    assert required <= set(metrics)
    # Reported losses are on the test split, with their pair count; selection on val (issue 10).
    assert metrics["test_pairs"] == PARAMS.eval_pairs and metrics["loss_reduction"] == "mean" and metrics["cost"] > 0
    assert {"selection_loss", "test_reached_target"} <= set(metrics)
    assert metrics["total_nodes"] == 32 + 3 * 16 + 32 + 32 + 128 + 32
    result = json.loads((out / "result.json").read_text())
    circuit = json.loads((out / "circuit.json").read_text())
    assert (
        circuit["task"] == TASK and circuit["cell"] == "pretrain/tiny" and circuit["checkpoint"] == str(checkpoint_dir)
    )
    assert circuit["counts"]["nodes"] == metrics["nodes"] == result["nodes"] == len(circuit["nodes"])
    assert (
        circuit["counts"]["edges"]
        == metrics["edges"]
        == sum(1 for e in circuit["edges"] if "weight" in e and e["kind"] != "write_unembed")
    )
    assert (
        circuit["losses"]["circuit"] == metrics["circuit_loss"]
        and circuit["hyperparameters"] == PARAMS.hyper.model_dump()
    )
    assert circuit["losses"]["selection_val"] == metrics["selection_loss"]
    assert circuit["losses"]["binarized_init"] == metrics["binarized_init_loss"]
    assert (
        circuit["evaluation"]["reported_split"] == "test" and circuit["evaluation"]["test_pairs"] == PARAMS.eval_pairs
    )
    assert (
        circuit["evaluation"]["pairs"] == result["pairs"]
        and result["pairs"]["test"] == result["test_pairs"] == PARAMS.eval_pairs
    )
    assert result["work"]["cost"] == result["cost"] == metrics["cost"]
    assert set(circuit["token_text"].values()) == {'")\n', "')\n"}
    assert (out / "circuit.html").read_text().startswith("<!doctype html>")
    assert (out / "loss_vs_k.png").read_bytes()[:4] == b"\x89PNG"
    steps = [e for e in events if e.get("total") == PARAMS.steps]
    assert steps and steps[-1]["completed"] == PARAMS.steps
    # The written curve is the one trial's: the same trial with its curve measured from its ranking (issue 27).
    loaded = load_prune_inputs(checkpoint_dir, mean_cache_dir, tokens_dir, TASK, PARAMS)
    again = run_trial(loaded.model, loaded.means, loaded.task_data, PARAMS.hyper, PARAMS, PARAMS.seed, task=TASK)
    add_loss_vs_k(loaded, PARAMS, again)
    assert result["loss_vs_k"] == again.loss_vs_k and len(again.loss_vs_k) >= PARAMS.curve_points
    assert metrics["timings"]["curve_s"] > 0
