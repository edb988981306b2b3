"""The pretrain worker: outputs, exact resume, divergence, config checks, and that it learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_run import N_CTX, VOCAB, tiny_train_config

from sparsepipe.workers.context import local_context
from sparsepipe.workers.nn.config import ModelConfig, OptimConfig, SparsityConfig
from sparsepipe.workers.nn.gpt import GPT, load_checkpoint
from sparsepipe.workers.nn.sparsity import keep_count
from sparsepipe.workers.shard_loader import ShardLoader
from sparsepipe.workers.train.config import DenseConfig
from sparsepipe.workers.train.loop import CHECKPOINT, TrainingDiverged, evaluate
from sparsepipe.workers.train.worker import run_pretrain

REQUIRED_METRICS = {
    "final_val_loss",
    "bigram_val_loss",
    "target_l0",
    "l0_by_param",
    "dead_neurons",
    "tokens_seen",
    "steps",
    "train_seconds",
}


def context(tmp_path: Path, tokens_dir: Path, name: str, **kwargs):
    return local_context(
        tmp_path / name, inputs={"tokenize": tokens_dir}, progress_dir=tmp_path / f"{name}.progress", **kwargs
    )


def test_outputs_metrics_and_final_sparsity(tmp_path, tokens_dir):
    events = []
    ctx = context(tmp_path, tokens_dir, "run", report=events.append)
    train = tiny_train_config(steps=20)
    run_pretrain(ctx, train)

    out = ctx.out_dir
    assert {p.name for p in out.iterdir()} >= {
        "model.safetensors",
        "config.json",
        "train_config.json",
        "metrics.jsonl",
        "curves.png",
    }
    assert REQUIRED_METRICS <= set(ctx.metrics)
    assert ctx.metrics["steps"] == 20 and ctx.metrics["tokens_seen"] == 20 * 8 * N_CTX
    assert ctx.metrics["target_l0"] == 0.25 and ctx.metrics["bigram_val_loss"] > 0
    json.dumps(ctx.metrics)  # goes into the MANIFEST

    model = load_checkpoint(out)
    assert model.config.vocab_size == VOCAB
    assert json.loads((out / "train_config.json").read_text())["model"]["vocab_size"] == VOCAB
    c_fc = model.blocks[0].mlp.c_fc.weight
    assert torch.count_nonzero(c_fc).item() == keep_count(c_fc.numel(), 0.25)
    assert ctx.metrics["l0_by_param"]["blocks.0.mlp.c_fc.weight"] == pytest.approx(0.25, abs=1e-3)
    assert ctx.metrics["l0_by_param"]["bigram"] == 1.0

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert {"step", "lr", "l0", "train_loss", "val_loss", "tokens_seen", "grad_rms"} <= set(rows[0])
    assert [r["step"] for r in rows if r["val_loss"] is not None] == [10, 20]
    assert rows[-1]["val_loss"] == pytest.approx(ctx.metrics["final_val_loss"])
    assert rows[-1]["l0"] == pytest.approx(0.25) and rows[0]["l0"] < 1.0
    last = {"completed": 20, "total": 20, "description": events[-1]["description"], "scalars": events[-1]["scalars"]}
    assert events[-1] == last  # each metrics.jsonl row also goes to the trackers as scalars (pipeline/tracking.py)
    assert last["scalars"]["val/loss"] == pytest.approx(rows[-1]["val_loss"])
    assert [e["completed"] for e in events if "scalars" in e] == list(range(1, 21))


class Killed(Exception):
    pass


def kill_at(step: int):
    def report(event):
        if event["completed"] == step:
            raise Killed

    return report


def test_killed_run_resumes_to_exactly_the_uninterrupted_weights(tmp_path, tokens_dir):
    train = tiny_train_config(steps=20, checkpoint_every=5)
    straight = context(tmp_path, tokens_dir, "straight")
    run_pretrain(straight, train)

    interrupted = context(tmp_path, tokens_dir, "interrupted", report=kill_at(12))
    with pytest.raises(Killed):
        run_pretrain(interrupted, train)
    assert interrupted.progress.exists(CHECKPOINT)
    resumed = context(tmp_path, tokens_dir, "interrupted")
    resumed.out_dir = tmp_path / "resumed"  # a fresh output folder, as after a restart elsewhere
    resumed.out_dir.mkdir()
    run_pretrain(resumed, train)

    expected, actual = (
        load_file(str(straight.out_dir / "model.safetensors")),
        load_file(str(resumed.out_dir / "model.safetensors")),
    )
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert (straight.out_dir / "metrics.jsonl").read_text().splitlines() == (
        resumed.out_dir / "metrics.jsonl"
    ).read_text().splitlines()
    assert resumed.metrics["tokens_seen"] == straight.metrics["tokens_seen"]


def test_resume_with_a_different_config_is_refused(tmp_path, tokens_dir):
    ctx = context(tmp_path, tokens_dir, "run", report=kill_at(5))
    with pytest.raises(Killed):
        run_pretrain(ctx, tiny_train_config(steps=20))
    with pytest.raises(ValueError, match="different training config"):
        run_pretrain(context(tmp_path, tokens_dir, "run"), tiny_train_config(steps=20, seed=1))


def test_nan_loss_fails_with_the_step_and_the_last_good_checkpoint(tmp_path, tokens_dir):
    ctx = context(tmp_path, tokens_dir, "run")
    train = tiny_train_config(steps=20, checkpoint_every=1, optim=OptimConfig(lr=1e30, warmup_frac=0.0))
    with pytest.raises(
        TrainingDiverged, match=r"diverged at step \d+: .*(nan|inf).*last good checkpoint is step \d+"
    ) as error:
        run_pretrain(ctx, train)
    assert error.value.step >= 2
    assert ctx.progress.exists(CHECKPOINT)
    state = torch.load(Path(ctx.progress.root) / CHECKPOINT, weights_only=True)
    assert state["trainer"]["step"] == error.value.step - 1
    assert all(torch.isfinite(t).all() for t in state["trainer"]["model"].values())


def test_n_ctx_must_match_the_shards(tmp_path, tokens_dir):
    train = tiny_train_config().model_copy(
        update={"model": ModelConfig(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=64)}
    )
    with pytest.raises(ValueError, match=f"n_ctx=64 .* n_ctx={N_CTX}"):
        run_pretrain(context(tmp_path, tokens_dir, "run"), train)


def test_dense_stage_config_trains_a_dense_model(tmp_path, tokens_dir):
    ctx = context(tmp_path, tokens_dir, "dense")
    dense = DenseConfig(
        train=tiny_train_config(
            steps=10, sparsity=SparsityConfig(enabled=False), optim=OptimConfig(lr_l0_scaling=False)
        )
    )
    run_pretrain(ctx, dense.train)
    assert ctx.metrics["target_l0"] == 1.0
    assert ctx.metrics["l0_by_param"]["blocks.0.mlp.c_fc.weight"] == 1.0


def test_sparse_training_beats_the_bigram_baseline(tmp_path, tokens_dir):
    ctx = context(tmp_path, tokens_dir, "learn")
    run_pretrain(ctx, tiny_train_config(steps=300, batch_size=16, eval_every=100, checkpoint_every=100))
    metrics = ctx.metrics
    assert metrics["bigram_val_loss"] == pytest.approx(2.43, abs=0.05)  # the stream's true bigram entropy
    assert metrics["final_val_loss"] < metrics["bigram_val_loss"] - 0.15


def test_evaluate_counts_mlp_neurons_that_never_fire(tokens_dir):
    model = GPT(tiny_train_config().model.model_copy(update={"vocab_size": VOCAB, "afrac": None}))
    batches = list(ShardLoader(tokens_dir, "val", 8).iter_eval(2))
    assert evaluate(model, batches).dead_neurons == 0
    with torch.no_grad():
        model.blocks[0].mlp.c_fc.weight[:3] = 0.0
        model.blocks[0].mlp.c_fc.bias[:3] = -1.0  # GELU(-1) < 0: never active
    assert evaluate(model, batches).dead_neurons == 3
