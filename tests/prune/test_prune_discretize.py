"""Mask training mechanics, bisection on k, the ranking, logit calibration, the two-way loss."""

from __future__ import annotations

import math

import torch
from pruning_toys import key_task, tiny_config

from sparsepipe.tasks import task_loss
from sparsepipe.workers.nn.masks import NodeLayout, ablation_values
from sparsepipe.workers.prune.config import PruneConfig, PruneHyperparams
from sparsepipe.workers.prune.losses import candidate_gap, two_way_loss
from sparsepipe.workers.prune.masked import MaskedModel
from sparsepipe.workers.prune.search import (
    Calibration,
    Ranking,
    fit_calibration,
    log_spaced_sizes,
    lr_at,
    random_like,
    smallest_sufficient_k,
    train_masks,
)


def test_bisection_finds_the_smallest_k_on_a_monotone_loss():
    calls = []

    def loss_at(k: int) -> float:
        calls.append(k)
        return 1.0 / (k + 1)

    result = smallest_sufficient_k(loss_at, k_max=1000, target=0.15)
    assert result.reached_target and result.k == 6  # 1/7 <= 0.15 < 1/6
    assert len(calls) <= math.ceil(math.log2(1001)) + 1
    assert [k for k, _ in result.probes] == calls


def test_bisection_reports_an_unreachable_target_without_failing():
    result = smallest_sufficient_k(lambda k: 0.5 - k * 1e-4, k_max=100, target=0.15)
    assert not result.reached_target and result.k == 100 and len(result.probes) == 1


def test_bisection_on_a_step_loss_and_at_the_edges():
    step = lambda threshold: lambda k: 0.1 if k >= threshold else 0.9  # noqa: E731
    for threshold in (0, 1, 37, 63, 64):
        assert smallest_sufficient_k(step(threshold), k_max=64, target=0.15).k == threshold


def test_ranking_keeps_the_k_largest_tau():
    layout = NodeLayout(tiny_config())
    tau = torch.linspace(-1, 1, layout.n_masks)[
        torch.randperm(layout.n_masks, generator=torch.Generator().manual_seed(0))
    ]
    ranking = Ranking(tau, layout)
    for k in (0, 1, 17, layout.n_masks):
        kept = ranking.top_k(k)
        assert int(kept.sum()) == k == ranking.nodes(k)
        if 0 < k < layout.n_masks:
            assert tau[kept > 0].min() > tau[kept == 0].max()
    assert ranking.n_active == int((tau > 0).sum())


def test_random_circuit_keeps_the_count_per_location():
    layout = NodeLayout(tiny_config(n_layer=2), tie_qk=True)
    mask = (torch.rand(layout.n_masks, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    other = random_like(mask, layout, torch.Generator().manual_seed(2))
    assert not torch.equal(mask, other)
    for s in layout.mask_slices.values():
        assert mask[s].sum() == other[s].sum()


def test_log_spaced_sizes():
    sizes = log_spaced_sizes(1000, 8)
    assert sizes[0] == 1 and sizes[-1] == 1000 and sizes == sorted(set(sizes))
    assert log_spaced_sizes(0, 8) == [] and log_spaced_sizes(5, 0) == []


def test_two_way_loss_on_the_gap_is_the_shared_task_loss():
    torch.manual_seed(0)
    batch = key_task(8, seed=0)
    logits = 3 * torch.randn(batch.tokens.shape[0], batch.tokens.shape[1], 16)
    assert torch.allclose(two_way_loss(candidate_gap(logits, batch), batch.correct), task_loss(logits, batch))
    # Shifting every logit by one constant changes nothing, which is why calibration shifts the gap instead.
    assert torch.allclose(candidate_gap(logits + 7.0, batch), candidate_gap(logits, batch))


def test_calibration_fixes_an_overconfident_biased_circuit():
    g = torch.Generator().manual_seed(0)
    correct = torch.arange(400) % 2
    signal = (correct * 2 - 1) * (1.0 + torch.rand(400, generator=g))
    noisy = signal + 1.5 * torch.randn(400, generator=g)
    gap = 6.0 * noisy + 4.0  # overconfident, and biased towards candidate 1
    before = float(two_way_loss(gap, correct))
    fitted = fit_calibration(gap, correct, steps=16)
    after = float(two_way_loss(gap, correct, fitted.scale, fitted.shift))
    assert after < 0.7 * before
    assert 0 < fitted.scale < 1 and fitted.shift < 0
    assert fit_calibration(gap, correct, steps=0) == Calibration(1.0, 0.0)


def test_lr_warms_up_then_decays_linearly_to_zero():
    lrs = [lr_at(step, 100, 1.0, 0.1) for step in range(100)]
    assert lrs[0] == 0.1 and lrs[9] == 1.0 and lrs[10] == 1.0
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == 1.0 / 90
    assert lr_at(0, 100, 1.0, 0.0) == 1.0


def test_mask_training_clamps_tau_and_moves_it(trained_model, trained_means):
    layout = NodeLayout(trained_model.config)
    masked = MaskedModel(trained_model, layout, ablation_values(layout, trained_means, "mean"))
    hyper = PruneHyperparams(lr=0.5, k_coef=1e-2, init_noise_scale=0.5)
    settings = PruneConfig(steps=6, batch_pairs=4, grad_clip=1.0)
    generator = torch.Generator().manual_seed(0)
    tau, history = train_masks(masked, key_task(16, seed=3), hyper, settings, generator)
    assert tau.shape == (layout.n_masks,)
    assert tau.min() >= -1 and tau.max() <= 1
    assert (tau.abs() == 1).any()  # a large lr drives some to the bounds
    assert history[0]["step"] == 0 and history[-1]["step"] == 5
    assert all(math.isfinite(row["task_loss"]) for row in history)
