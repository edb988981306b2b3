"""The App. C step functions: the psi family's ends, the levels, the greedy fit."""

from __future__ import annotations

import pytest
import torch

from sparsepipe.workers.prune.binarize import StepFunctions, fit_steps, levels, psi


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

    def loss_with(steps: StepFunctions) -> float:
        seen.append(steps.nodes.tolist())
        # prefers a high upper level at node 3 and a low lower level at node 7
        return -float(steps.high[0]) + (float(steps.low[1]) if steps.nodes.numel() > 1 else 0.0)

    steps, log = fit_steps(activations, nodes, loss_with)
    assert seen == [[3]] * 3 + [[3, 7]] * 3  # greedy: node 7 is fitted with node 3 already binarized
    assert [row["node"] for row in log] == [3, 7]
    assert float(steps.high[0]) == 9.0 and log[0]["fraction"] == 0.75
    assert float(steps.low[1]) == 0.0 and log[1]["fraction"] == 0.25


def test_step_intervention_only_touches_its_channels():
    steps = StepFunctions(torch.tensor([5, 6]), torch.tensor([0.0, -1.0]), torch.tensor([1.0, 1.0]))
    x = torch.tensor([[[0.25, 0.75, 3.0]]])
    assert steps.intervention(None, slice(0, 3)) is None  # no binarized node at this location
    out = steps.intervention(None, slice(4, 7))(x)
    assert out.tolist() == [[[0.25, 1.0, 1.0]]]
