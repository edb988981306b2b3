"""Checkpoints kept along a training run (`keep_every`): the weights of that step, with its val loss."""

from __future__ import annotations

import json

import torch
from tiny_run import tiny_train_config

from sparsepipe.workers.context import local_context
from sparsepipe.workers.nn.config import SparsityConfig
from sparsepipe.workers.nn.gpt import load_checkpoint
from sparsepipe.workers.train.kept import KEPT_FILE
from sparsepipe.workers.train.worker import run_pretrain


def _dense(steps: int, **overrides):
    return tiny_train_config(steps=steps, sparsity=SparsityConfig(enabled=False), eval_every=5, **overrides)


def test_kept_checkpoints_hold_each_steps_weights_and_val_loss(tmp_path, tokens_dir):
    ctx = local_context(tmp_path / "long", inputs={"tokenize": tokens_dir})
    run_pretrain(ctx, _dense(20, keep_every=5))
    kept = json.loads((tmp_path / "long" / KEPT_FILE).read_text())
    assert [entry["step"] for entry in kept] == [5, 10, 15, 20] and kept[-1]["folder"] == "."
    history = [json.loads(line) for line in (tmp_path / "long" / "metrics.jsonl").read_text().splitlines()]
    losses = {row["step"]: row["val_loss"] for row in history if row.get("val_loss") is not None}
    assert all(entry["val_loss"] == losses[entry["step"]] for entry in kept)

    # The same run keeping every 10 steps holds the same step-10 and final weights: keeping changes nothing.
    short = local_context(tmp_path / "short", inputs={"tokenize": tokens_dir})
    run_pretrain(short, _dense(20, keep_every=10))
    ten_a = load_checkpoint(tmp_path / "long" / kept[1]["folder"]).state_dict()
    ten_b = load_checkpoint(tmp_path / "short" / "kept" / "step_0000010").state_dict()
    assert all(torch.equal(ten_a[name], ten_b[name]) for name in ten_a)
    final_a, final_b = load_checkpoint(tmp_path / "long").state_dict(), load_checkpoint(tmp_path / "short").state_dict()
    assert all(torch.equal(final_a[name], final_b[name]) for name in final_a)  # keeping changes no weight


def test_keep_until_bounds_the_kept_steps_and_no_keep_every_keeps_nothing(tmp_path, tokens_dir):
    ctx = local_context(tmp_path / "until", inputs={"tokenize": tokens_dir})
    run_pretrain(ctx, _dense(15, keep_every=5, keep_until=5))
    kept = json.loads((tmp_path / "until" / KEPT_FILE).read_text())
    assert [entry["step"] for entry in kept] == [5, 15]
    assert sorted(p.name for p in (tmp_path / "until" / "kept").iterdir()) == ["step_0000005"]
    ctx = local_context(tmp_path / "none", inputs={"tokenize": tokens_dir})
    run_pretrain(ctx, _dense(5))
    assert not (tmp_path / "none" / KEPT_FILE).exists() and not (tmp_path / "none" / "kept").exists()
