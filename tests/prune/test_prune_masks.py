"""Masked forward through the one GPT implementation, and the Heaviside surrogate."""

from __future__ import annotations

import pytest
import torch
from pruning_toys import random_rows, tiny_config

from sparsepipe.workers.mean_cache.worker import node_means
from sparsepipe.workers.nn.gpt import GPT, node_locations
from sparsepipe.workers.nn.masks import NodeLayout, ablation_values, heaviside, mask_interventions

MODEL_VARIANTS = {
    "abstopk+bigram+sink": {},
    "dense, learned positions": {
        "afrac": None,
        "pos_emb": "learned",
        "bigram_table": False,
        "attn_sink": False,
        "n_layer": 2,
    },
}


@pytest.fixture(params=list(MODEL_VARIANTS))
def model_and_means(request):
    torch.manual_seed(1)
    model = GPT(tiny_config(**MODEL_VARIANTS[request.param])).eval()
    return model, node_means(model, [random_rows(8, seed=2)])


def test_all_masks_on_is_the_unmasked_model_exactly(model_and_means):
    model, means = model_and_means
    layout = NodeLayout(model.config)
    tokens = random_rows(4, seed=3)[:, :-1]
    interventions = mask_interventions(layout, torch.ones(layout.n_nodes), ablation_values(layout, means, "mean"))
    assert torch.equal(model(tokens, interventions=interventions)[0], model(tokens)[0])


def test_all_masks_off_is_the_fully_mean_ablated_model(model_and_means):
    model, means = model_and_means
    layout = NodeLayout(model.config)
    tokens = random_rows(4, seed=3)[:, :-1]
    masked = mask_interventions(layout, torch.zeros(layout.n_nodes), ablation_values(layout, means, "mean"))
    # Independent: every node location replaced by its mean outright.
    frozen = {name: (lambda x, m=means[name]: m.expand_as(x)) for name, _ in node_locations(model.config)}
    assert torch.equal(model(tokens, interventions=masked)[0], model(tokens, interventions=frozen)[0])


def test_zero_ablation_freezes_deleted_nodes_at_zero(random_model):
    layout = NodeLayout(random_model.config)
    mask = torch.ones(layout.n_nodes)
    deleted = layout.node_slices["0.mlp.post_act"]
    mask[deleted] = 0
    _, recorded = random_model(
        random_rows(2, seed=4)[:, :-1],
        record=["0.mlp.post_act"],
        interventions=mask_interventions(layout, mask, ablation_values(layout, None, "zero")),
    )
    assert torch.count_nonzero(recorded["0.mlp.post_act"]) == 0


def test_a_single_deleted_channel_takes_its_mean(model_and_means):
    model, means = model_and_means
    layout = NodeLayout(model.config)
    mask = torch.ones(layout.n_nodes)
    mask[layout.node_slices["0.attn.v"].start + 3] = 0
    _, recorded = model(
        random_rows(2, seed=4)[:, :-1],
        record=["0.attn.v"],
        interventions=mask_interventions(layout, mask, ablation_values(layout, means, "mean")),
    )
    v = recorded["0.attn.v"]
    assert torch.all(v[..., 3] == means["0.attn.v"][3])


def test_tied_qk_layout_shares_mask_entries():
    config = tiny_config(n_layer=2)
    untied, tied = NodeLayout(config), NodeLayout(config, tie_qk=True)
    inner = config.n_head * config.d_head
    assert tied.n_nodes == untied.n_nodes == untied.n_masks
    assert tied.n_masks == untied.n_nodes - 2 * inner
    assert int(tied.multiplicity.sum()) == tied.n_nodes
    mask = torch.zeros(tied.n_masks)
    mask[tied.mask_slices["1.attn.q"].start + 5] = 1
    nodes = tied.split(tied.node_mask(mask))
    assert nodes["1.attn.q"].nonzero().flatten().tolist() == [5]
    assert nodes["1.attn.k"].nonzero().flatten().tolist() == [5]
    assert int(tied.node_mask(mask).sum()) == 2


def test_heaviside_forward_is_a_step_and_backward_the_sigmoid_derivative():
    tau = torch.tensor([-0.5, 0.0, 0.3, 1.0], requires_grad=True)
    temperature = 0.5
    gate = heaviside(tau, temperature)
    assert gate.tolist() == [0.0, 0.0, 1.0, 1.0]
    gate.sum().backward()
    s = torch.sigmoid(tau.detach() / temperature)
    assert torch.allclose(tau.grad, s * (1 - s) / temperature)


def test_gradients_reach_every_mask_location_through_the_model(model_and_means):
    model, means = model_and_means
    model.requires_grad_(False)
    layout = NodeLayout(model.config)
    tau = torch.full((layout.n_masks,), 0.1, requires_grad=True)
    logits, _ = model(
        random_rows(4, seed=6)[:, :-1],
        interventions=mask_interventions(layout, heaviside(tau, 1.0), ablation_values(layout, means, "mean")),
    )
    logits.logsumexp(-1).mean().backward()
    assert tau.grad is not None and torch.isfinite(tau.grad).all()
    for name, s in layout.mask_slices.items():
        assert tau.grad[s].abs().sum() > 0, f"no gradient reaches the masks of {name}"
