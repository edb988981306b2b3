"""`train.microbatches`: a step run as k equal microbatches trains the weights one batch would, reports the whole
batch's loss and gradient RMS, keeps the NaN handling and bf16 autocast, and a k that cannot split the batch is
refused at plan time (exit 2) naming the key."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.workers.nn.config import ModelConfig, SparsityConfig, TrainConfig
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.nn.training import StepStats, Trainer, TrainingDiverged, lm_loss

VOCAB, N_CTX, BATCH = 32, 16, 8


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def train_config(microbatches: int = 1, sparse: bool = True, **overrides) -> TrainConfig:
    model = ModelConfig(n_layer=1, d_model=16, n_head=2, d_head=8, n_ctx=N_CTX, vocab_size=VOCAB)
    # L0 reaches its target at step 2 of 4: the later steps' weight top-k keeps a quarter of each matrix.
    sparsity = SparsityConfig(enabled=sparse, target_l0=0.25, min_alive_per_neuron=1)
    return TrainConfig(
        model=model, sparsity=sparsity, batch_size=BATCH, steps=4, microbatches=microbatches, **overrides
    )


def batches(count: int = 4) -> list[torch.Tensor]:
    rng = torch.Generator().manual_seed(7)
    return [torch.randint(0, VOCAB, (BATCH, N_CTX + 1), generator=rng) for _ in range(count)]


def trained(train: TrainConfig) -> tuple[dict[str, torch.Tensor], list[StepStats]]:
    torch.manual_seed(0)
    model = GPT(train.model)
    trainer = Trainer(model, train)
    stats = [trainer.train_step(batch) for batch in batches(train.steps)]
    return {n: p.detach().clone() for n, p in model.named_parameters()}, stats


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_microbatches_train_the_weights_of_one_batch(sparse):
    whole, whole_stats = trained(train_config(1, sparse))
    torch.manual_seed(0)
    initial = {n: p.detach().clone() for n, p in GPT(train_config().model).named_parameters()}
    for k in (2, 4):
        split, split_stats = trained(train_config(k, sparse))
        for a, b in zip(whole_stats, split_stats):
            assert b.loss == pytest.approx(a.loss, rel=1e-5)
            assert b.grad_rms == pytest.approx(a.grad_rms, rel=1e-4)  # not k times it: each chunk's loss is / k
        assert all(not torch.equal(weight, initial[name]) for name, weight in whole.items())  # training moved all
        for name, weight in whole.items():
            assert torch.equal(weight != 0, split[name] != 0), name  # the weight top-k kept the same entries
            assert torch.allclose(split[name], weight, rtol=1e-4, atol=1e-6), (name, k)
    if sparse:
        matrix = whole["blocks.0.mlp.c_fc.weight"]
        assert (matrix != 0).float().mean() <= 0.3  # the top-k did act on these steps


def test_a_nan_in_one_microbatch_ends_the_step_with_nothing_updated():
    train = train_config(4)
    torch.manual_seed(0)
    model = GPT(train.model)
    trainer = Trainer(model, train)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rows_seen: list[int] = []

    def nan_in_the_second_chunk(rows: torch.Tensor) -> torch.Tensor:
        rows_seen.append(rows.shape[0])
        loss = lm_loss(model, rows)
        return loss * float("nan") if len(rows_seen) == 2 else loss

    with pytest.raises(TrainingDiverged, match="step 1: the training loss is nan"):
        trainer.train_step(batches(1)[0], nan_in_the_second_chunk)
    assert rows_seen == [2, 2]  # BATCH / 4 rows each; the accumulation stopped at the NaN
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_data_parallel_ranks_sync_once_per_step_after_every_microbatch():
    train = train_config(4)
    torch.manual_seed(0)
    trainer = Trainer(GPT(train.model), train)
    synced: list[tuple[bool, float]] = []

    def record_sync(params: list[torch.nn.Parameter], finite: bool) -> int:
        synced.append((finite, sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)))
        return 0 if finite else 1

    trainer.sync_gradients = record_sync
    trainer.train_step(batches(1)[0])
    assert len(synced) == 1 and synced[0][0] and synced[0][1] > 0
    model = trainer.model
    with pytest.raises(TrainingDiverged, match="not finite on 1 data-parallel rank"):
        trainer.train_step(batches(1)[0], lambda rows: lm_loss(model, rows) * float("inf"))
    assert len(synced) == 2 and not synced[1][0]  # the rank still joins the step's one all-reduce, flagged


def test_bf16_autocast_covers_every_microbatch():
    train = train_config(4, precision="bf16")
    torch.manual_seed(0)
    model = GPT(train.model)
    trainer = Trainer(model, train)
    dtypes: list[torch.dtype] = []

    def recording(rows: torch.Tensor) -> torch.Tensor:
        logits, _ = model(rows[:, :-1])
        dtypes.append(logits.dtype)
        return lm_loss(model, rows)

    stats = trainer.train_step(batches(1)[0], recording)
    assert dtypes == [torch.bfloat16] * 4 and stats.loss == pytest.approx(float(torch.log(torch.tensor(VOCAB))), 0.1)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_microbatches_that_do_not_divide_the_batch_are_refused():
    with pytest.raises(ValidationError, match="microbatches=3 does not divide batch_size=8"):
        train_config(3)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        train_config(0)


@pytest.mark.parametrize(
    "assignments, named",
    [
        (["bridges.train.microbatches=3"], ["'bridges.train.microbatches'", "batch_size=8"]),
        (
            ["pretrain.train.microbatches=8", "execution.train_workers=2"],
            ["pretrain.train.batch_size=8", "execution.train_workers=2", "pretrain.train.microbatches=8"],
        ),
    ],
)
def test_a_batch_that_does_not_split_is_exit_2_at_plan_time_naming_the_keys(assignments, named, tmp_path):
    sets = [arg for assignment in assignments for arg in ("--set", assignment)]
    result = CliRunner().invoke(app, ["plan", "--preset", "smoke", "--store", str(tmp_path / "s"), *sets])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for key in named:
        assert key in text, (key, text)
