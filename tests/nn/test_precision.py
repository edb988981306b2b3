"""`train.precision`: bf16 autocast with fp32 master weights, fp32 loss and exact top-k, against fp32 on the CPU."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from sparsepipe.workers.bridges.config import PRESETS as BRIDGES_PRESETS
from sparsepipe.workers.nn.config import ModelConfig, SparsityConfig, TrainConfig
from sparsepipe.workers.nn.gpt import GPT, topk_sizes
from sparsepipe.workers.nn.sparsity import keep_count
from sparsepipe.workers.nn.training import Trainer, lm_loss, uses_bf16
from sparsepipe.workers.train.config import DENSE_PRESETS, PRETRAIN_PRESETS
from sparsepipe.workers.train.loop import evaluate

VOCAB, N_CTX = 64, 32
# bf16 keeps 8 bits of mantissa: its logits differ from fp32's by ~1e-2, and AbsTopK and the weight top-k may
# then keep a few different entries. Over the run below (loss 3.94 -> 2.97) the two val-loss curves stay within
# this many nats (measured on the 2-core VM: at most 0.002).
VAL_LOSS_TOLERANCE = 0.02


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: this test's models are tiny, and on a loaded 2-core machine two threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def markov_rows(count: int, seed: int) -> torch.Tensor:
    """Rows of a fixed random first-order Markov chain over VOCAB tokens: learnable, so the loss falls."""
    table = torch.Generator().manual_seed(1234)
    successors = torch.randint(0, VOCAB, (VOCAB, 4), generator=table)
    rng = torch.Generator().manual_seed(seed)
    rows = torch.empty(count, N_CTX + 1, dtype=torch.long)
    rows[:, 0] = torch.randint(0, VOCAB, (count,), generator=rng)
    for t in range(1, N_CTX + 1):
        choice = torch.randint(0, 4, (count,), generator=rng)
        rows[:, t] = successors[rows[:, t - 1], choice]
    return rows


def train_config(precision: str, steps: int = 80) -> TrainConfig:
    model = ModelConfig(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=N_CTX, vocab_size=VOCAB)
    return TrainConfig(
        model=model,
        sparsity=SparsityConfig(target_l0=0.25),
        steps=steps,
        batch_size=8,
        precision=precision,
    )


def run(precision: str) -> tuple[Trainer, list[float]]:
    """Train from the same init on the same batches; the val loss (fp32 eval) every 10 steps."""
    train = train_config(precision)
    torch.manual_seed(0)
    trainer = Trainer(GPT(train.model), train)
    data, val = markov_rows(train.steps * train.batch_size, seed=1), [markov_rows(64, seed=2)]
    curve = []
    for step in range(train.steps):
        trainer.train_step(data[step * train.batch_size : (step + 1) * train.batch_size])
        if (step + 1) % 10 == 0:
            curve.append(evaluate(trainer.model, val).loss)
    return trainer, curve


def test_bf16_follows_the_fp32_val_loss_curve():
    _, fp32 = run("fp32")
    trainer, bf16 = run("bf16")
    assert fp32[-1] < fp32[0] - 0.3, f"the run must learn for the comparison to mean anything: {fp32}"
    gaps = [abs(a - b) for a, b in zip(fp32, bf16)]
    assert max(gaps) <= VAL_LOSS_TOLERANCE, f"fp32 {fp32}\nbf16 {bf16}"
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters()), "master weights stay fp32"
    state = trainer.optimizer.state_dict()["state"]
    assert all(v.dtype == torch.float32 for s in state.values() for k, v in s.items() if k != "step")


def test_bf16_step_keeps_the_scheduled_weight_count_and_abstopk_k():
    train = train_config("bf16", steps=4)
    torch.manual_seed(0)
    trainer = Trainer(GPT(train.model), train)
    batch = markov_rows(train.batch_size, seed=3)
    for _ in range(train.steps):
        trainer.train_step(batch)
    fraction = trainer.schedule.fractions(trainer.step)["matrix"]
    for p in trainer.sparsifier.params:
        if p.kind == "matrix":
            assert torch.count_nonzero(p.param).item() == keep_count(p.param.numel(), fraction), p.name
    sizes = topk_sizes(train.model)
    with trainer.autocast:
        logits, recorded = trainer.model(batch[:, :-1], record={"0.mlp.post_act", "0.attn.q"})
        loss = lm_loss(trainer.model, batch)
    assert recorded["0.mlp.post_act"].dtype == torch.bfloat16, "the forward runs in bf16"
    assert loss.dtype == torch.float32, "the loss is computed in fp32"
    for name, location in (("0.mlp.post_act", "mlp_neuron"), ("0.attn.q", "attn_q")):
        kept = (recorded[name] != 0).sum(dim=-1)
        assert kept.max().item() <= sizes[location], name
        assert kept.float().mean().item() > 0.9 * sizes[location], name


def test_auto_is_bf16_on_cuda_only_and_dtype_is_renamed():
    assert uses_bf16("auto", "cuda") and not uses_bf16("auto", "cpu")
    assert uses_bf16("bf16", "cpu") and not uses_bf16("fp32", "cuda")
    with pytest.raises(ValidationError, match="precision"):
        TrainConfig.model_validate({"dtype": "bfloat16"})
    with pytest.raises(ValidationError):
        TrainConfig(precision="fp16")


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_small_and_paper_train_in_bf16_on_cuda(preset):
    trains = [
        PRETRAIN_PRESETS[preset]["pretrain"]["train"],
        DENSE_PRESETS[preset]["dense"]["train"],
        BRIDGES_PRESETS[preset]["bridges"]["train"],
    ]
    assert all(uses_bf16(TrainConfig.model_validate(t).precision, "cuda") for t in trains)
