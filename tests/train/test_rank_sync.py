"""Data-parallel ranks behave as one process: gradient averaging, NaN agreement, batch-wide normalisers.

The first tests run two real gloo ranks as plain processes (no Ray: seconds); the last one runs a data-parallel
cell on real Ray Train workers and checks that a NaN on one rank ends the cell with the NaN named, not a hang.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_run import tiny_train_config

from sparsepipe.workers.bridges.bridges import RankSpread, nmse
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.nn.training import Trainer, TrainingDiverged
from sparsepipe.workers.train.parallel import average_gradients

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, body, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        result = body(rank)
    except Exception:  # the parent reads what each rank ended with
        result = traceback.format_exc()
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def run_ranks(body, tmp_path: Path, timeout: float = 180.0) -> list:
    """Run body(rank) on two gloo ranks; returns what each returned (or its traceback). A hang fails the test."""
    context = mp.get_context("spawn")
    port = _free_port()
    procs = [context.Process(target=_rank_main, args=(r, port, body, str(tmp_path))) for r in range(WORLD)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
    hung = [r for r, proc in enumerate(procs) if proc.is_alive()]
    for proc in procs:
        proc.kill()
    assert not hung, f"ranks {hung} still running after {timeout} s"
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _average_three_parameters(rank: int) -> dict:
    both, nobody, only_rank0 = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
    both.grad = torch.full((3,), float(rank + 1))  # 1 on rank 0, 2 on rank 1
    if rank == 0:
        only_rank0.grad = torch.full((3,), 4.0)
    diverged = average_gradients([both, nobody, only_rank0], WORLD, loss_finite=True)
    return {"both": both.grad, "nobody": nobody.grad, "only_rank0": only_rank0.grad, "diverged": diverged}


@pytest.mark.slow  # two spawned processes import torch and sparsepipe: ~10 s idle, a minute under load
def test_gradients_average_as_one_process_and_missing_ones_stay_missing(tmp_path):
    for result in run_ranks(_average_three_parameters, tmp_path):
        assert not isinstance(result, str), result
        assert torch.equal(result["both"], torch.full((3,), 1.5))
        assert result["nobody"] is None  # AdamW skips it, as one process would (a zero would decay it)
        assert torch.equal(result["only_rank0"], torch.full((3,), 2.0))  # rank 1 contributes zero
        assert result["diverged"] == 0


def _nan_on_rank1_at_step3(rank: int) -> str:
    torch.manual_seed(0)
    train = tiny_train_config(steps=10)
    model = GPT(train.model.model_copy(update={"vocab_size": 16}))
    trainer = Trainer(model, train)
    trainer.sync_gradients = lambda params, finite: average_gradients(params, WORLD, finite)
    batch = torch.randint(0, 16, (4, train.model.n_ctx + 1))

    def loss_fn(rows: torch.Tensor) -> torch.Tensor:
        logits, _ = model(rows[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())
        return loss * float("nan") if rank == 1 and trainer.step == 2 else loss

    try:
        for _ in range(train.steps):
            trainer.train_step(batch, loss_fn)
    except TrainingDiverged as error:
        return f"step {error.step}: {error.reason}"
    return "no error"


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank_at_that_step(tmp_path):
    results = run_ranks(_nan_on_rank1_at_step3, tmp_path)
    assert results[0].startswith("step 3: the training loss is not finite on 1 data-parallel rank"), results
    assert results[1].startswith("step 3: the training loss is not finite on 1 data-parallel rank"), results
    assert "this rank's: nan" in results[1] and "this rank's: nan" not in results[0]


def test_rank_spread_gives_each_rank_the_loss_whose_average_gradient_is_one_process(tmp_path):
    torch.manual_seed(0)
    target = torch.randn(2, 6, 5) * 3 + 1  # [batch, tokens, features]; rank r holds row r
    prediction = torch.randn(2, 6, 5, requires_grad=True)

    one_process = nmse(prediction, target)
    (expected,) = torch.autograd.grad(one_process, prediction)

    locals_ = []
    RankSpread(1, lambda t: locals_.append(t.clone()) or t).scales([target[1:]])
    spread = RankSpread(WORLD, lambda t: t + locals_[0])  # what rank 0's all-reduce returns
    scale_rank0 = spread.scales([target[:1]])[0]
    global_spread = (target.flatten(0, -2) - target.flatten(0, -2).mean(0)).pow(2).sum()
    assert scale_rank0.item() == pytest.approx(global_spread.item() / WORLD, rel=1e-6)

    grads = [
        torch.autograd.grad(nmse(prediction[r : r + 1], target[r : r + 1], scale_rank0), prediction)[0]
        for r in range(WORLD)
    ]
    assert torch.allclose(sum(grads) / WORLD, expected, rtol=1e-5, atol=1e-7)


def _nan_on_rank1_builder(train, inputs, device):
    from sparsepipe.workers.train.worker import pretrain_job

    job = pretrain_job(train, inputs, device)
    rank = dist.get_rank() if dist.is_initialized() else 0  # the cell's driver builds a job too
    model, trainer = job.trainer.model, job.trainer

    def loss_fn(rows: torch.Tensor) -> torch.Tensor:
        logits, _ = model(rows[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), rows[:, 1:].flatten())
        return loss * float("nan") if rank == 1 and trainer.step == 4 else loss

    job.loss_fn = loss_fn
    return job


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_nan_on_one_ray_train_rank_ends_the_cell_naming_it(local_ray, tmp_path, tokens_dir):
    from ray import cloudpickle

    from sparsepipe.workers.context import local_context
    from sparsepipe.workers.train.worker import train_cell

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the builder travels to the workers by value
    ctx = local_context(tmp_path / "nan", inputs={"tokenize": tokens_dir}, workers=2)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 5: the training loss is not finite on 1 data"):
        train_cell(ctx, tiny_train_config(steps=20, checkpoint_every=50), _nan_on_rank1_builder, "tokenize")
