"""Trials trained together on a trial dimension give the circuits of trials run one at a time; the coarse-to-fine
bisection gives plain bisection's k."""

from __future__ import annotations

import math
import random

import pytest
import torch
from pruning_toys import key_task

from sparsepipe.workers.interventions.worker import first_order_increase
from sparsepipe.workers.nn.masks import NodeLayout, ablation_values, mask_interventions
from sparsepipe.workers.prune.config import PruneConfig, PruneHyperparams
from sparsepipe.workers.prune.losses import TaskData, by_length, concat_pairs, two_way_loss
from sparsepipe.workers.prune.masked import MaskedModel
from sparsepipe.workers.prune.search import coarse_to_fine_k, smallest_sufficient_k
from sparsepipe.workers.prune.trial import loss_without_each_node, run_trial, run_trials

SETTINGS = PruneConfig(steps=60, batch_pairs=8, eval_pairs=32, curve_points=4, binarize_pairs=0)
HYPERS = [
    PruneHyperparams(lr=0.03, k_coef=3e-3),
    PruneHyperparams(lr=0.02, k_coef=1e-3, heaviside_temp=0.5, inv_beta2=0.1),
    PruneHyperparams(lr=0.05, k_coef=5e-3, wd=1e-2, init_noise_bias=0.2),
]
SEEDS = [0, 11, 5]


@pytest.fixture(scope="module")
def task_data() -> TaskData:
    return TaskData(train=key_task(128, seed=2), eval=key_task(32, seed=1), test=key_task(24, seed=3))


def test_trials_trained_together_equal_trials_run_alone(trained_model, trained_means, task_data):
    together = run_trials(trained_model, trained_means, task_data, HYPERS, SETTINGS, SEEDS, task="key")
    alone = [
        run_trial(trained_model, trained_means, task_data, h, SETTINGS, s, task="key") for h, s in zip(HYPERS, SEEDS)
    ]
    assert [r.masks_kept for r in together] == [r.masks_kept for r in alone]
    assert len({r.masks_kept for r in alone}) > 1, "the trials should differ, or the test pins little"
    for batched, single in zip(together, alone):
        assert batched.kept == single.kept and batched.sweep[0]["kept"] == single.sweep[0]["kept"]
        assert (batched.nodes, batched.edges, batched.reached_target) == (
            single.nodes,
            single.edges,
            single.reached_target,
        )
        assert batched.work == single.work and batched.cost == single.cost  # CARBS sees the same cost
        for a, b in zip(batched.train_history, single.train_history):
            assert a["nodes"] == b["nodes"] and a["task_loss"] == pytest.approx(b["task_loss"], rel=1e-4, abs=1e-6)
        for name in ("selection_loss", "circuit_loss", "inverse_loss", "random_circuit_loss", "full_model_loss"):
            assert getattr(batched, name) == pytest.approx(getattr(single, name), rel=1e-4, abs=1e-6), name
        assert batched.timings["trained_together"] == 3 and single.timings["trained_together"] == 1


def test_a_stack_of_masks_gates_each_block_of_rows_as_that_mask_alone(trained_model, trained_means):
    layout = NodeLayout(trained_model.config)
    masked = MaskedModel(trained_model, layout, torch.zeros(layout.n_nodes))
    masks = (torch.rand(3, layout.n_nodes, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    batches = [key_task(4, seed=s) for s in (7, 8, 9)]
    with torch.no_grad():
        stacked = masked.forward_gap(concat_pairs(batches), masks).view(3, -1)
        for i, batch in enumerate(batches):
            assert torch.allclose(stacked[i], masked.forward_gap(batch, masks[i]), atol=1e-5)
    assert set(mask_interventions(layout, masks, masked.ablation)) == set(layout.names)


def test_by_length_keeps_every_pair_and_the_loss():
    batch = key_task(20, seed=4)
    ordered = by_length(batch)
    lengths = ordered.eval_pos.view(-1, 2).max(dim=1).values
    assert torch.all(lengths[1:] >= lengths[:-1]) and sorted(p.prompt_a for p in ordered.pairs) == sorted(
        p.prompt_a for p in batch.pairs
    )
    gap = torch.randn(len(batch), generator=torch.Generator().manual_seed(0))
    order = torch.argsort(batch.eval_pos.view(-1, 2).max(dim=1).values, stable=True)
    rows = torch.stack([2 * order, 2 * order + 1], dim=1).reshape(-1)
    assert two_way_loss(gap[rows], ordered.correct) == pytest.approx(float(two_way_loss(gap, batch.correct)))


def _monotone(k_star: int, noise: float, seed: int):
    rng = random.Random(seed)
    jitter = {}

    def loss_at(k: int) -> float:  # falls with k, crosses 0.15 between k_star - 1 and k_star
        return 0.1 * math.exp(-(k - k_star) / 50) if k >= k_star else 0.2 + (k_star - k) * 1e-3

    def coarse_at(k: int) -> float:  # the same with noise: brackets k roughly
        jitter.setdefault(k, rng.uniform(-noise, noise))
        return loss_at(k) + jitter[k]

    return loss_at, coarse_at


@pytest.mark.parametrize("k_star", [0, 1, 2, 37, 200, 999, 1000])
@pytest.mark.parametrize("noise", [0.0, 0.08, 0.5])
def test_coarse_to_fine_finds_plain_bisections_k(k_star, noise):
    loss_at, coarse_at = _monotone(k_star, noise, seed=k_star)
    plain = smallest_sufficient_k(loss_at, 1000, 0.15)
    fine = coarse_to_fine_k(loss_at, coarse_at, 1000, 0.15)
    assert (fine.k, fine.reached_target) == (plain.k, plain.reached_target) == (k_star, True)
    assert all(loss_at(k) == loss for k, loss in fine.probes)  # only full evaluations are recorded
    if noise == 0.0 and 0 < k_star < 1000:
        assert len(fine.probes) == 3  # k_max, then the guess and the k below it confirm


def test_coarse_to_fine_reports_an_unreachable_target():
    result = coarse_to_fine_k(lambda k: 0.5, lambda k: 0.0, 100, 0.15)
    assert not result.reached_target and result.k == 100 and len(result.probes) == 1


def masked_with_random_circuit(model, means, nodes: int, seed: int) -> tuple[MaskedModel, torch.Tensor]:
    """The model under mean ablation and a circuit of `nodes` random nodes."""
    layout = NodeLayout(model.config)
    masked = MaskedModel(model, layout, ablation_values(layout, means, "mean"))
    circuit = torch.zeros(layout.n_nodes)
    circuit[torch.randperm(layout.n_nodes, generator=torch.Generator().manual_seed(seed))[:nodes]] = 1.0
    return masked, circuit


def test_stacked_single_node_ablations_equal_one_at_a_time(trained_model, trained_means):
    masked, circuit = masked_with_random_circuit(trained_model, trained_means, nodes=11, seed=1)
    test = key_task(12, seed=6)
    losses = loss_without_each_node(masked, test, circuit, batch_pairs=4, reduction="mean")
    assert sorted(losses) == torch.nonzero(circuit).flatten().tolist()
    for position, loss in losses.items():
        alone = circuit.clone()
        alone[position] = 0
        assert loss == pytest.approx(float(two_way_loss(masked.gaps([test], alone), test.correct)), rel=1e-4, abs=1e-6)


def test_the_first_order_estimate_of_a_nodes_ablation_is_the_masks_derivative(trained_model, trained_means):
    """The interventions stage pre-screens a large circuit's read nodes by this estimate: minus the val loss's
    gradient with respect to the mask, checked against a finite difference of the mask."""
    masked, circuit = masked_with_random_circuit(trained_model, trained_means, nodes=40, seed=2)
    val = key_task(12, seed=6)
    estimate = first_order_increase(masked, val, circuit, batch_pairs=4, reduction="mean")
    assert estimate.shape == circuit.shape and estimate.abs().max() > 0
    step = 1e-3
    for position in torch.nonzero(circuit).flatten()[:5].tolist():
        lowered = circuit.clone()
        lowered[position] -= step
        rise = float(
            two_way_loss(masked.gaps([val], lowered), val.correct)
            - two_way_loss(masked.gaps([val], circuit), val.correct)
        )
        assert rise / step == pytest.approx(float(estimate[position]), rel=0.05, abs=1e-3)
