"""Data-parallel training cells on real Ray Train workers (TorchTrainer, gloo on the CPU).

Rank equality (bitwise, by weight digests gathered from every rank), agreement with one worker on the same
global batches, and recovery from a worker killed mid-run (Ray Train restarts the group; it resumes from
the cell's checkpoint).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_run import tiny_train_config

from sparsepipe.workers.context import local_context
from sparsepipe.workers.train.parallel import FINAL
from sparsepipe.workers.train.worker import run_pretrain

pytestmark = pytest.mark.slow

# 2 workers vs 1 on the same global batches: only the order of float sums differs (gradient all-reduce),
# which can move a weight across the top-k threshold; the validation loss curve agrees to this much.
VAL_LOSS_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def ray_instance(local_ray):
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # KillOnce travels to the workers by value


def _train(tmp_path: Path, tokens_dir: Path, name: str, workers: int, **kwargs):
    ctx = local_context(
        tmp_path / name,
        inputs={"tokenize": tokens_dir},
        progress_dir=tmp_path / f"{name}.progress",
        workers=workers,
        **kwargs,
    )
    run_pretrain(ctx, tiny_train_config(steps=20, checkpoint_every=5))
    return ctx


def _val_losses(ctx) -> list[float]:
    rows = [json.loads(line) for line in (ctx.out_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["val_loss"] for row in rows if row["val_loss"] is not None]


def test_two_workers_hold_identical_weights_and_follow_one_worker(ray_instance, tmp_path, tokens_dir):
    two = _train(tmp_path, tokens_dir, "two", workers=2)
    final = torch.load(tmp_path / "two.progress" / FINAL, weights_only=True)
    assert final["world"] == 2 and len(final["rank_digests"]) == 2
    assert final["rank_digests"][0] == final["rank_digests"][1]  # bitwise-equal weights on both ranks
    assert two.metrics["train_workers"] == 2 and two.metrics["steps"] == 20

    one = _train(tmp_path, tokens_dir, "one", workers=1)
    assert two.metrics["tokens_seen"] == one.metrics["tokens_seen"]
    assert _val_losses(two) == pytest.approx(_val_losses(one), abs=VAL_LOSS_TOLERANCE)
    assert two.metrics["l0_by_param"] == one.metrics["l0_by_param"]  # the same sparsity on every matrix
    weights_two, weights_one = (
        load_file(str(two.out_dir / "model.safetensors")),
        load_file(str(one.out_dir / "model.safetensors")),
    )
    for name in weights_one:
        close = torch.isclose(weights_two[name], weights_one[name], atol=1e-3).float().mean().item()
        assert close > 0.95, (name, close)


class KillOnce:
    """A progress callback (it runs on rank 0) that SIGKILLs its own worker process at `step`, once."""

    def __init__(self, step: int, marker: Path):
        self.step, self.marker = step, marker

    def __call__(self, event: dict) -> None:
        if event.get("completed", 0) >= self.step and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_restarts_from_the_checkpoint(ray_instance, tmp_path, tokens_dir):
    ctx = _train(tmp_path, tokens_dir, "killed", workers=2, report=KillOnce(12, tmp_path / "killed-once"))
    assert (tmp_path / "killed-once").exists()  # a worker did die
    final = torch.load(tmp_path / "killed.progress" / FINAL, weights_only=True)
    assert final["rank_digests"][0] == final["rank_digests"][1]
    assert ctx.metrics["steps"] == 20 and len(_val_losses(ctx)) == 2
