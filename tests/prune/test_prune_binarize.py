"""The App. C step functions: the psi family's ends, the levels, the greedy initialisation, the annealed
refinement."""

from __future__ import annotations

import pytest
import torch
from pruning_toys import key_task

from sparsepipe.workers.nn.masks import NodeLayout, ablation_values
from sparsepipe.workers.prune.binarize import (
    StepFunctions,
    fit_binarization,
    fit_steps,
    levels,
    psi,
    refine_steps,
    temperature_at,
)
from sparsepipe.workers.prune.config import PruneConfig
from sparsepipe.workers.prune.losses import chunks, two_way_loss
from sparsepipe.workers.prune.masked import MaskedModel
from sparsepipe.workers.prune.trial import binarized_losses


def test_psi_is_the_identity_at_one_and_the_step_at_zero():
    x = torch.linspace(-3, 5, 101)
    low, high = torch.tensor(-1.0), torch.tensor(2.0)
    assert torch.allclose(psi(x, 1.0, low, high), x, atol=1e-5)
    step = psi(x, 0.0, low, high)
    assert torch.equal(step, torch.where(x < 0.5, low, high))
    for t in (0.0, 0.01, 0.3, 0.7, 1.0):  # l and r are fixed points all along the family
        ends = psi(torch.stack([low, high]), t, low, high)
        assert torch.allclose(ends, torch.stack([low, high]), atol=1e-5)
    # In between, values move monotonically from x towards the step as t falls.
    mid = psi(x, 0.5, low, high)
    assert torch.all((mid - x).abs() <= (step - x).abs() + 1e-5)


def test_levels_are_the_means_on_either_side_of_the_threshold():
    values = torch.tensor([0.0, 0.0, 1.0, 4.0])
    assert levels(values, 0.5) == (pytest.approx(1 / 3), 4.0)  # threshold 2
    assert levels(values, 0.25) == (0.0, 2.5)  # threshold 1: 1 is above
    assert levels(torch.ones(3), 0.5) == (1.0, 1.0)


def test_fit_steps_picks_the_threshold_with_the_lowest_loss():
    activations = torch.tensor([[0.0, 1.0], [1.0, 3.0], [5.0, 0.0], [9.0, 4.0]])
    nodes = torch.tensor([3, 7])
    seen = []

    def losses_with(steps: StepFunctions) -> list[float]:
        seen.append((steps.nodes.tolist(), steps.variants))
        # prefers a high upper level at node 3 and a low lower level at node 7
        return [
            -float(steps.high[v, 0]) + (float(steps.low[v, 1]) if steps.nodes.numel() > 1 else 0.0)
            for v in range(steps.variants)
        ]

    steps, log = fit_steps(activations, nodes, losses_with)
    # greedy: node 7 is fitted with node 3 already binarized; a node's three thresholds are tried together
    assert seen == [([3], 3), ([3, 7], 3)]
    assert [row["node"] for row in log] == [3, 7]
    assert float(steps.high[0]) == 9.0 and log[0]["fraction"] == 0.75
    assert float(steps.low[1]) == 0.0 and log[1]["fraction"] == 0.25


def test_step_intervention_only_touches_its_channels():
    steps = StepFunctions(torch.tensor([5, 6]), torch.tensor([0.0, -1.0]), torch.tensor([1.0, 1.0]))
    x = torch.tensor([[[0.25, 0.75, 3.0]]])
    assert steps.intervention(None, slice(0, 3)) is None  # no binarized node at this location
    out = steps.intervention(None, slice(4, 7))(x)
    assert out.tolist() == [[[0.25, 1.0, 1.0]]]


def test_a_stack_of_levels_applies_variant_i_to_block_i_of_the_rows():
    nodes = torch.tensor([1, 3])
    low, high = torch.tensor([[0.0, -1.0], [0.5, 0.0], [-2.0, 1.0]]), torch.tensor([[1.0, 1.0], [2.0, 3.0], [0.0, 2.0]])
    x = torch.randn(2, 5, 4)  # [rows, positions, channels]
    for t in (0.0, 0.4):
        stack = StepFunctions(nodes, low, high, t)
        together = stack.intervention(None, slice(0, 4))(x.repeat(3, 1, 1))
        alone = [stack.variant(v).intervention(None, slice(0, 4))(x) for v in range(3)]
        assert torch.allclose(together, torch.cat(alone), atol=1e-6)


def test_psi_depends_only_on_the_pair_of_levels():
    x = torch.linspace(-3, 5, 101)
    low, high = torch.tensor(-1.0), torch.tensor(2.0)
    for t in (0.0, 0.3, 1.0):
        assert torch.equal(psi(x, t, high, low), psi(x, t, low, high))


def test_psi_gradients_stay_finite_when_the_levels_meet():
    x = torch.linspace(-3, 5, 11)
    low, high = torch.tensor(1.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
    for t in (1e-12, 0.5):
        out = psi(x, t, low, high)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(low.grad) and torch.isfinite(high.grad)


def test_temperature_is_annealed_from_the_identity_as_the_fifth_power_of_what_is_left():
    assert temperature_at(0, 10) == 1.0
    assert [temperature_at(step, 10) for step in range(1, 10)] == pytest.approx(
        [(1 - step / 10) ** 5 for step in range(1, 10)]
    )
    assert 0 < temperature_at(9, 10) < 1e-4  # the last steps train almost the exact step


# A node the downstream reads as gap = 2 (y - 1/2), on activations in [0, 1]: any level the initialisation can
# choose is a mean of activations, so |gap| <= 1 and the loss stays above softplus(-1) = 0.31; the task needs
# levels farther apart, which training l and r finds.
TOY_ACTIVATIONS = torch.tensor([0.0, 0.6, 0.1, 0.7, 0.2, 0.8, 0.3, 0.9, 0.4, 1.0])[:, None]
TOY_CORRECT = (TOY_ACTIVATIONS[:, 0] >= 0.5).long()  # rows 2i, 2i + 1: the two prompts of pair i
TOY_NODES = torch.tensor([0])


def toy_loss(steps: StepFunctions) -> torch.Tensor:
    y = steps.intervention(None, slice(0, 1))(TOY_ACTIVATIONS)[:, 0]
    return two_way_loss(2 * (y - 0.5), TOY_CORRECT)


def toy_fit_loss(steps: StepFunctions) -> float:
    return float(toy_loss(steps))


def toy_fit_losses(stack: StepFunctions) -> list[float]:
    return [toy_fit_loss(stack.variant(v)) for v in range(stack.variants)]


def test_refinement_reaches_levels_the_means_miss():
    init, _ = fit_steps(TOY_ACTIVATIONS, TOY_NODES, toy_fit_losses)
    assert 0 <= float(init.low[0]) < float(init.high[0]) <= 1 and toy_fit_loss(init) > 0.3
    refined = refine_steps(init, toy_loss, steps=200, lr=0.05)
    assert refined.temperature == 0.0  # applied as the exact step
    assert float(refined.low[0]) < -1 and float(refined.high[0]) > 2
    assert toy_fit_loss(refined) < 0.01


def test_the_refinement_stands_only_where_it_lowers_the_held_out_loss():
    helped = fit_binarization(TOY_ACTIVATIONS, TOY_NODES, toy_fit_losses, toy_loss, steps=200, lr=0.05,
                              selection_loss_with=toy_fit_loss)  # fmt: skip
    assert helped.final_loss < helped.init_loss / 5 and helped.final is not helped.init

    def wrong_way(steps: StepFunctions) -> torch.Tensor:  # trains towards the worst levels
        return -toy_loss(steps)

    hurt = fit_binarization(TOY_ACTIVATIONS, TOY_NODES, toy_fit_losses, wrong_way, steps=200, lr=0.05,
                            selection_loss_with=toy_fit_loss)  # fmt: skip
    assert hurt.final is hurt.init and hurt.final_loss == hurt.init_loss == helped.init_loss

    # Refined levels that win on the fitting pairs but lose on the held-out ones are not kept (overfitting):
    # held-out pairs on which every gain on the fitting pairs is a loss.
    def held_out_loss(steps: StepFunctions) -> float:
        return -toy_fit_loss(steps)

    overfit = fit_binarization(TOY_ACTIVATIONS, TOY_NODES, toy_fit_losses, toy_loss, steps=200, lr=0.05,
                               selection_loss_with=held_out_loss)  # fmt: skip
    assert overfit.final is overfit.init and overfit.final_loss == overfit.init_loss


def test_binarized_losses_of_a_model_report_the_initialisation_and_the_refinement(trained_model, trained_means):
    layout = NodeLayout(trained_model.config)
    masked = MaskedModel(trained_model, layout, ablation_values(layout, trained_means, "mean"))
    settings = PruneConfig(batch_pairs=8, binarize_steps=100)
    whole_model = torch.ones(layout.n_nodes)
    losses = binarized_losses(
        masked, whole_model, key_task(8, seed=2), key_task(24, seed=4), key_task(24, seed=3), settings
    )
    assert set(losses) == {
        "binarized_loss",
        "binarized_init_loss",
        "binarized_fit_loss",
        "binarized_pair_losses",
        "binarized_own_scale_loss",
    }
    per_pair = losses["binarized_pair_losses"]  # the bootstrap's input: one loss per test pair
    assert len(per_pair) == 24 and sum(per_pair) / 24 == pytest.approx(losses["binarized_loss"], rel=1e-4)
    # Every node binarized: the initialisation loses some of the task, the refinement wins it back (test pairs).
    assert losses["binarized_loss"] < losses["binarized_init_loss"] / 10


def test_a_stack_of_step_functions_gives_each_variant_the_gaps_it_has_alone(trained_model, trained_means):
    layout = NodeLayout(trained_model.config)
    masked = MaskedModel(trained_model, layout, ablation_values(layout, trained_means, "mean"))
    mask = torch.ones(layout.n_nodes)
    mask[::3] = 0
    nodes = torch.tensor([1, layout.n_nodes // 2, layout.n_nodes - 1])
    generator = torch.Generator().manual_seed(0)
    stack = StepFunctions(nodes, torch.randn(3, 3, generator=generator), torch.randn(3, 3, generator=generator))
    batches = chunks(key_task(8, seed=2), 3)  # chunks of unequal width and size
    together = masked.gaps_each(batches, mask, stack)
    alone = torch.stack([masked.gaps(batches, mask, stack.variant(v)) for v in range(3)])
    assert together.shape == alone.shape and torch.allclose(together, alone, atol=1e-5)
