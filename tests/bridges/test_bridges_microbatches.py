"""Bridges trained in microbatches (`train.microbatches`): NMSE keeps the whole step batch's normaliser, so k
microbatches train the sparse model and the bridges that one batch would, in one process and on data-parallel ranks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bridge_toys import tiny_run

from sparsepipe.workers.bridges.bridges import RankSpread, spread_sums
from sparsepipe.workers.bridges.config import BridgesConfig, InterventionConfig
from sparsepipe.workers.bridges.worker import BridgesJob, bridges_job
from sparsepipe.workers.nn.config import ModelConfig
from sparsepipe.workers.nn.gpt import GPT, save_checkpoint

VOCAB, N_CTX, BATCH, STEPS = tiny_run.VOCAB, tiny_run.N_CTX, 8, 4


@pytest.fixture(scope="module")
def random_dense(tmp_path_factory) -> Path:
    """A frozen dense model for the bridges: random weights do (only the equality of two runs is checked)."""
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("dense")
    save_checkpoint(GPT(ModelConfig(n_layer=1, d_model=24, n_head=2, d_head=8, n_ctx=N_CTX, vocab_size=VOCAB)), folder)
    return folder


def job(dense: Path, microbatches: int) -> BridgesJob:
    train = tiny_run.tiny_train_config(steps=STEPS, batch_size=BATCH, microbatches=microbatches)
    train = train.model_copy(update={"model": train.model.model_copy(update={"vocab_size": VOCAB})})
    config = BridgesConfig(enabled=True, train=train, interventions=InterventionConfig(tasks=[]))
    return bridges_job(config, train, {"dense": dense}, torch.device("cpu"))


def batches() -> list[torch.Tensor]:
    return [torch.from_numpy(tiny_run.topic_rows(BATCH, seed=10 + step).astype("int64")) for step in range(STEPS)]


def trained(dense: Path, microbatches: int) -> tuple[dict[str, torch.Tensor], list[float]]:
    run = job(dense, microbatches)
    losses = [run.trainer.train_step(batch, run.loss_fn).loss for batch in batches()]
    weights = {f"sparse.{n}": p.detach().clone() for n, p in run.objective.sparse.named_parameters()}
    weights.update({f"bridges.{n}": p.detach().clone() for n, p in run.objective.bridges.named_parameters()})
    return weights, losses


@pytest.mark.parametrize("microbatches", [2, 4])
def test_microbatched_bridges_train_the_weights_of_one_batch(random_dense, microbatches):
    whole, whole_losses = trained(random_dense, 1)
    split, split_losses = trained(random_dense, microbatches)
    # Each microbatch's NMSE over its own rows' spread gives another loss (measured: 0.5-2.6% off on these rows).
    assert split_losses == pytest.approx(whole_losses, rel=1e-5)
    for name, weight in whole.items():
        assert torch.equal(weight != 0, split[name] != 0), name
        assert torch.allclose(split[name], weight, rtol=1e-4, atol=1e-6), name


def test_ranks_and_microbatches_share_the_one_process_normaliser(random_dense):
    """2 ranks x 2 microbatches: each chunk's NMSE normaliser is the global spread / 4, as for 1 process x 4 chunks,
    so the trainer's / k and the ranks' average give the one-process gradient (average_gradients)."""
    batch = batches()[0]
    one = job(random_dense, 4).objective
    one.begin_step(batch, 4)
    rank0 = job(random_dense, 2).objective
    with torch.no_grad():
        rank1_sums = spread_sums(rank0.residuals(batch[BATCH // 2 :, :-1]))
    rank0.rank_spread = RankSpread(2, lambda sums: sums + rank1_sums)  # what rank 0's all-reduce returns
    rank0.begin_step(batch[: BATCH // 2], 2)
    assert one.step_spread is not None and rank0.step_spread is not None
    for expected, actual in zip(one.step_spread.fixed, rank0.step_spread.fixed, strict=True):
        assert actual.item() == pytest.approx(expected.item(), rel=1e-6)
    targets = [t.float().flatten(0, -2) for t in one.residuals(batch[:, :-1])]
    spreads = [(t - t.mean(0)).pow(2).sum().item() / 4 for t in targets]
    assert [s.item() for s in one.step_spread.fixed] == pytest.approx(spreads, rel=1e-4)
    one.begin_step(batch, 1)
    assert one.step_spread is None  # one microbatch normalises itself in terms(), as before
