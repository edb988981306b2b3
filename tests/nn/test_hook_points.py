"""Hook points are named identity modules: plain forward hooks reach them, per-call hooks never leak."""

from __future__ import annotations

import pytest
import torch

from sparsepipe.workers.nn.config import ModelConfig
from sparsepipe.workers.nn.gpt import GPT, HookPoint, hook_names

VOCAB = 50


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(n_layer=2, d_model=32, n_head=2, d_head=8, n_ctx=16, vocab_size=VOCAB, afrac=0.5)
    return GPT(config).eval()


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))


def _hook_count(model: GPT) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_every_reference_name_is_a_hook_point_module(model):
    assert list(model.hook_points) == hook_names(model.config)
    assert all(isinstance(point, HookPoint) and point.name == name for name, point in model.hook_points.items())
    named = dict(model.named_modules())
    assert named["blocks.1.attn.hook_q"] is model.hook_points["1.attn.q"]
    assert named["blocks.0.mlp.hook_resid_delta"] is model.hook_points["0.mlp.resid_delta"]
    assert named["blocks.0.hook_resid_mid"] is model.hook_points["0.resid_mid"]
    assert not any(True for point in model.hook_points.values() for _ in point.parameters())


def test_state_dict_has_no_hook_point_entries(model):
    assert not any("hook" in key for key in model.state_dict())


def test_a_plain_forward_hook_records_and_replaces(model, tokens):
    _, recorded = model(tokens, record={"0.mlp.post_act"})
    seen = {}
    handle = model.hook_points["0.mlp.post_act"].register_forward_hook(
        lambda module, inputs, out: seen.setdefault("x", out)
    )
    model(tokens)
    handle.remove()
    assert torch.equal(seen["x"], recorded["0.mlp.post_act"])

    zeroed = model.hook_points["1.mlp.resid_delta"].register_forward_hook(
        lambda module, inputs, out: torch.zeros_like(out)
    )
    try:
        replaced, _ = model(tokens)
    finally:
        zeroed.remove()
    expected, _ = model(tokens, interventions={"1.mlp.resid_delta": torch.zeros_like})
    assert torch.equal(replaced, expected)


def test_per_call_hooks_are_removed_after_the_call(model, tokens):
    plain, _ = model(tokens)
    before = _hook_count(model)
    model(tokens, record=".*", interventions={"0.attn.v": lambda x: 2 * x})
    assert _hook_count(model) == before
    again, recorded = model(tokens)
    assert torch.equal(again, plain) and recorded == {}


def test_per_call_hooks_are_removed_when_the_forward_raises(model, tokens):
    before = _hook_count(model)

    def explode(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model(tokens, interventions={"0.attn.q": explode})
    assert _hook_count(model) == before
    plain, _ = model(tokens)
    assert torch.isfinite(plain).all()


def test_plain_and_per_call_hooks_compose(model, tokens):
    """A persistent hook runs first (registered first); the call's intervention sees its output."""
    handle = model.hook_points["0.resid_mid"].register_forward_hook(lambda module, inputs, out: out + 1.0)
    try:
        _, recorded = model(tokens, record={"0.resid_mid"}, interventions={"0.resid_mid": lambda x: 2 * x})
        _, plain = model(tokens, record={"0.resid_mid"})
    finally:
        handle.remove()
    assert torch.allclose(recorded["0.resid_mid"], 2 * plain["0.resid_mid"])
