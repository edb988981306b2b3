"""Weight sparsity: L0 schedule, lr schedule, exact top-k with the min-alive rule, the training step."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from sparsepipe.workers.nn.config import ModelConfig, OptimConfig, SparsityConfig, TrainConfig
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.nn.sparsity import L0Schedule, WeightSparsifier, keep_count, learning_rate, nonzero_fractions
from sparsepipe.workers.nn.training import Trainer, build_optimizer, limit_grad_rms

MODEL = ModelConfig(n_layer=2, d_model=32, n_head=2, d_head=8, n_ctx=16, vocab_size=48)


def model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(MODEL.model_copy(update=overrides))


# ------------------------------------------------------------------------- schedules


def test_linear_anneal_from_dense_to_target():
    schedule = L0Schedule(SparsityConfig(target_l0=0.1, anneal_start_frac=0.2, anneal_end_frac=0.6), total_steps=100)
    assert schedule.weight_l0(0) == 1.0 and schedule.weight_l0(20) == 1.0
    assert schedule.weight_l0(40) == pytest.approx(0.55)
    assert schedule.weight_l0(60) == pytest.approx(0.1) and schedule.weight_l0(100) == pytest.approx(0.1)


def test_exp_anneal_is_geometric():
    schedule = L0Schedule(SparsityConfig(target_l0=0.01, anneal="exp"), total_steps=100)
    assert schedule.weight_l0(25) == pytest.approx(0.1)
    assert schedule.weight_l0(50) == pytest.approx(0.01)


def test_embedding_and_bias_fractions_follow_their_own_targets():
    schedule = L0Schedule(SparsityConfig(target_l0=1 / 64), total_steps=10)
    assert schedule.fractions(10) == pytest.approx({"matrix": 1 / 64, "embed": 1 / 16, "bias": 1 / 16})
    schedule = L0Schedule(SparsityConfig(target_l0=1 / 64, embed_l0=0.5, bias_l0=1.0), total_steps=10)
    assert schedule.fractions(10) == pytest.approx({"matrix": 1 / 64, "embed": 0.5, "bias": 1.0})
    assert schedule.fractions(0) == {"matrix": 1.0, "embed": 1.0, "bias": 1.0}


def test_schedule_names_are_validated():
    with pytest.raises(ValidationError):
        SparsityConfig(anneal="exponential")
    with pytest.raises(ValidationError):
        OptimConfig(grad_rms_mode="normalise")


def test_lr_warmup_then_linear_decay_times_inverse_sqrt_l0():
    optim = OptimConfig(lr=1.0, warmup_frac=0.1)
    lrs = [learning_rate(step, 100, optim) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5) and lrs[99] == pytest.approx(1 / 90)
    assert max(lrs) == pytest.approx(1.0)
    assert learning_rate(50, 100, optim, weight_l0=0.25) == pytest.approx(2 * learning_rate(50, 100, optim))
    no_scaling = optim.model_copy(update={"lr_l0_scaling": False})
    assert learning_rate(50, 100, no_scaling, weight_l0=0.25) == learning_rate(50, 100, no_scaling)


# ---------------------------------------------------------------------- weight top-k


def sparsifier(m: GPT, **config) -> WeightSparsifier:
    return WeightSparsifier(m, L0Schedule(SparsityConfig(**config), total_steps=10))


def test_every_matrix_keeps_exactly_its_scheduled_count():
    m = model()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    fractions = sparsifier(m, target_l0=0.15, embed_l0=0.3, bias_l0=0.5).apply(10)
    roles = m.parameter_roles()
    for name, p in m.named_parameters():
        kind = roles[name].kind
        if kind == "dense":
            assert torch.equal(p, before[name]), name  # norms, sinks, bigram table untouched
        else:
            assert torch.count_nonzero(p).item() == keep_count(p.numel(), fractions[kind]), name
            kept = p != 0
            assert torch.equal(p[kept], before[name][kept])  # survivors are unchanged, not rescaled


def make_lopsided(m: GPT) -> None:
    """Give neurons 0-3 of every matrix all the large weights, so plain top-k starves the other neurons."""
    params = dict(m.named_parameters())
    with torch.no_grad():
        for name, role in m.parameter_roles().items():
            if role.kind == "matrix":
                p = params[name]
                p.copy_(torch.rand_like(p) * 1e-3 + 1e-4)
                p.narrow(role.neuron_dim, 0, 4).add_(10.0)


def alive_per_neuron(m: GPT) -> dict[str, torch.Tensor]:
    params = dict(m.named_parameters())
    return {n: (params[n] != 0).sum(dim=1 - r.neuron_dim) for n, r in m.parameter_roles().items() if r.kind == "matrix"}


def test_min_alive_rule_protects_along_the_neuron_axis():
    m = model()
    make_lopsided(m)
    sparsifier(m, target_l0=0.15, min_alive_per_neuron=4).apply(10)
    inner = MODEL.n_head * MODEL.d_head
    assert m.blocks[0].attn.c_attn.weight.shape == (3 * inner, 32)  # rows: q, k, v channels
    assert m.blocks[0].mlp.c_proj.weight.shape == (32, 4 * 32)  # columns: neurons
    # Rows of c_attn / c_fc and columns of c_proj each keep >= 4 entries. Protecting the other
    # axis would keep only the large neurons 0-3 alive.
    for name, alive in alive_per_neuron(m).items():
        assert (alive >= 4).all(), name


def test_without_min_alive_lopsided_matrices_lose_neurons():
    m = model()
    make_lopsided(m)
    sparsifier(m, target_l0=0.15, min_alive_per_neuron=0).apply(10)
    for name, alive in alive_per_neuron(m).items():
        assert (alive < 4).any(), name


def test_min_alive_beyond_the_budget_is_an_error():
    # c_fc is 128 x 32: 4 per neuron needs 512 entries, 1/16 of 4096 is 256.
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.c_attn\.weight|blocks\.0\.mlp\.c_fc\.weight"):
        sparsifier(model(), target_l0=1 / 16, min_alive_per_neuron=4)


# --------------------------------------------------------------------- training step


def train_config(**overrides) -> TrainConfig:
    base = dict(
        model=MODEL,
        sparsity=SparsityConfig(target_l0=0.2, anneal_end_frac=0.5),
        optim=OptimConfig(lr=1e-2),
        steps=12,
        batch_size=4,
    )
    return TrainConfig(**{**base, **overrides})


def test_after_every_step_counts_match_the_schedule_and_neurons_stay_alive():
    train = train_config()
    trainer = Trainer(model(), train)
    roles = trainer.model.parameter_roles()
    data = torch.randint(0, 48, (train.steps, 4, 17), generator=torch.Generator().manual_seed(0))
    for batch in data:
        stats = trainer.train_step(batch)
        fractions = trainer.schedule.fractions(trainer.step)
        assert stats.l0 == fractions["matrix"]
        for name, p in trainer.model.named_parameters():
            role = roles[name]
            if role.kind == "matrix":
                assert torch.count_nonzero(p).item() == keep_count(p.numel(), fractions["matrix"]), (trainer.step, name)
                assert ((p != 0).sum(dim=1 - role.neuron_dim) >= 4).all(), (trainer.step, name)
            elif role.kind in ("embed", "bias"):
                assert torch.count_nonzero(p).item() <= keep_count(p.numel(), fractions[role.kind])
    assert trainer.schedule.weight_l0(trainer.step) == pytest.approx(0.2)
    # Adam moments stay dense: zeroed weights keep their optimizer state.
    c_fc = trainer.model.blocks[0].mlp.c_fc.weight
    assert torch.count_nonzero(trainer.optimizer.state[c_fc]["exp_avg_sq"]) > torch.count_nonzero(c_fc)


def test_dense_training_leaves_weights_dense():
    trainer = Trainer(model(), train_config(sparsity=SparsityConfig(enabled=False)))
    for _ in range(3):
        trainer.train_step(torch.randint(0, 48, (4, 17)))
    assert trainer.sparsifier is None
    assert min(nonzero_fractions(trainer.model)[n] for n in ("blocks.0.mlp.c_fc.weight", "lm_head.weight")) == 1.0


def grads_of(values: list[torch.Tensor]) -> list[torch.nn.Parameter]:
    params = [torch.nn.Parameter(torch.zeros_like(v)) for v in values]
    for p, v in zip(params, values):
        p.grad = v.clone()
    return params


def test_grad_rms_is_clipped_only_when_above_the_limit():
    params = grads_of([torch.full((3,), 2.0), torch.full((5,), 2.0)])
    assert limit_grad_rms(params, OptimConfig(grad_clip_rms=1.0)) == pytest.approx(2.0)
    assert all(torch.allclose(p.grad, torch.ones_like(p)) for p in params)
    small = grads_of([torch.full((4,), 0.5)])
    limit_grad_rms(small, OptimConfig(grad_clip_rms=1.0))
    assert torch.allclose(small[0].grad, torch.full((4,), 0.5))


def test_grad_rms_normalize_mode_always_rescales():
    small = grads_of([torch.full((4,), 0.5), torch.full((4,), -0.5)])
    limit_grad_rms(small, OptimConfig(grad_clip_rms=1.0, grad_rms_mode="normalize"))
    rms = math.sqrt(sum(p.grad.square().sum().item() for p in small) / 8)
    assert rms == pytest.approx(1.0)


def test_weight_decay_applies_to_matrices_and_embeddings_only():
    m = model()
    optimizer = build_optimizer(m, OptimConfig(weight_decay=0.1))
    decayed = {id(p) for p in optimizer.param_groups[0]["params"]}
    roles = m.parameter_roles()
    for name, p in m.named_parameters():
        assert (id(p) in decayed) == (roles[name].kind in ("matrix", "embed")), name
    assert optimizer.param_groups[0]["weight_decay"] == 0.1 and optimizer.param_groups[1]["weight_decay"] == 0.0
    assert optimizer.defaults["eps"] == 0.1 and optimizer.defaults["betas"] == (0.9, 0.95)


def test_after_topk_decay_shrinks_the_surviving_weights():
    batch = torch.randint(0, 48, (4, 17), generator=torch.Generator().manual_seed(3))
    results = {}
    for mode in ("after_topk", "adamw"):
        train = train_config(optim=OptimConfig(lr=1e-2, weight_decay=0.5, weight_decay_mode=mode))
        trainer = Trainer(model(), train)
        assert trainer.optimizer.param_groups[0]["weight_decay"] == (0.0 if mode == "after_topk" else 0.5)
        trainer.train_step(batch)
        results[mode] = trainer.model.blocks[0].mlp.c_fc.weight.detach()
    plain = Trainer(model(), train_config(optim=OptimConfig(lr=1e-2, weight_decay=0.0)))
    stats = plain.train_step(batch)
    expected = plain.model.blocks[0].mlp.c_fc.weight.detach() * (1 - stats.lr * 0.5)
    torch.testing.assert_close(results["after_topk"], expected)
    assert not torch.allclose(results["adamw"], expected)
