"""The model: hook points, AbsTopK, attention (sinks), bigram table, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from sparsepipe.workers.nn.config import ALL_NODE_LOCATIONS, ModelConfig
from sparsepipe.workers.nn.gpt import (
    FINAL_RESID,
    GPT,
    LOCATION_HOOKS,
    CheckpointError,
    hook_name,
    hook_names,
    load_checkpoint,
    node_locations,
    parse_hook_name,
    save_checkpoint,
    topk_sizes,
)

VOCAB = 40


def make_model(seed: int = 0, **overrides) -> GPT:
    config = ModelConfig(
        **{"n_layer": 2, "d_model": 32, "n_head": 3, "d_head": 8, "n_ctx": 16, "vocab_size": VOCAB, **overrides}
    )
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():  # nonzero biases, sinks and bigram table, so every path is exercised
        for name, p in model.named_parameters():
            if name.endswith(("bias", "sink")) or name == "bigram":
                p.normal_(std=0.1)
    return model.eval()


def tokens(batch: int = 3, length: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_hook_names_shapes_and_forward_order():
    model = make_model()
    config = model.config
    _, recorded = model(tokens(), record=".*")
    assert list(recorded) == hook_names(config)
    inner = config.n_head * config.d_head
    widths = {
        "act_in": config.d_model,
        "q": inner,
        "k": inner,
        "v": inner,
        "resid_delta": config.d_model,
        "post_act": 4 * config.d_model,
    }
    for name, activation in recorded.items():
        expected = widths.get(name.rsplit(".", 1)[-1], config.d_model)
        assert activation.shape == (3, 16, expected), name
    assert [n for n, _ in node_locations(config)] == [
        n for n in hook_names(config) if "resid_in" not in n and "resid_mid" not in n and n != FINAL_RESID
    ]
    for name, width in node_locations(config):
        assert recorded[name].shape[-1] == width


def test_location_and_hook_names_map_both_ways():
    assert set(LOCATION_HOOKS) == set(ALL_NODE_LOCATIONS)
    for location in ALL_NODE_LOCATIONS:
        assert parse_hook_name(hook_name(5, location)) == (5, location)
    assert hook_name(0, "mlp_neuron") == "0.mlp.post_act" and hook_name(1, "attn_out") == "1.attn.resid_delta"
    with pytest.raises(ValueError):
        parse_hook_name("0.resid_mid")


def test_abstopk_keeps_exactly_k_per_token_at_every_location():
    model = make_model(afrac=0.25)
    _, recorded = model(tokens(), record=".*")
    sizes = topk_sizes(model.config)
    for name, width in node_locations(model.config):
        k = sizes[parse_hook_name(name)[1]]
        assert k == int(0.25 * width)
        assert (recorded[name].count_nonzero(dim=-1) == k).all(), name


def test_abstopk_only_at_configured_locations():
    model = make_model(afrac=0.25, afrac_locations=["mlp_neuron", "attn_v"])
    _, recorded = model(tokens(), record=".*")
    for name, width in node_locations(model.config):
        location = parse_hook_name(name)[1]
        counts = recorded[name].count_nonzero(dim=-1)
        if location in ("mlp_neuron", "attn_v"):
            assert (counts == width // 4).all(), name
        else:
            assert (counts > width // 4).all(), name


def test_linear_maps_qkv_split_and_exact_gelu():
    model = make_model(afrac=None)
    _, rec = model(tokens(), record=".*")
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    inner = model.config.n_head * model.config.d_head
    for i, part in enumerate(("q", "k", "v")):
        rows = slice(i * inner, (i + 1) * inner)
        expected = F.linear(rec["0.attn.act_in"], attn.c_attn.weight[rows], attn.c_attn.bias[rows])
        torch.testing.assert_close(rec[f"0.attn.{part}"], expected)
    expected = 0.5 * (h := mlp.c_fc(rec["0.mlp.act_in"])) * (1 + torch.erf(h / math.sqrt(2)))
    torch.testing.assert_close(rec["0.mlp.post_act"], expected)


def attention_oracle(model: GPT, rec: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """Manual causal softmax attention (with the sink in the denominator) from recorded q, k, v."""
    attn = model.blocks[layer].attn
    B, T, _ = rec[f"{layer}.attn.q"].shape
    H, dh = model.config.n_head, model.config.d_head
    q, k, v = (rec[f"{layer}.attn.{p}"].view(B, T, H, dh).transpose(1, 2) for p in "qkv")
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    weights = scores.exp()
    denominator = weights.sum(-1, keepdim=True)
    if attn.sink is not None:
        denominator = denominator + attn.sink.exp().view(1, H, 1, 1)
    y = ((weights / denominator) @ v).transpose(1, 2).reshape(B, T, H * dh)
    return attn.c_proj(y)


@pytest.mark.parametrize("sink", [True, False])
def test_attention_matches_manual_softmax(sink):
    model = make_model(afrac=None, attn_sink=sink)
    _, rec = model(tokens(), record=".*")
    for layer in range(model.config.n_layer):
        torch.testing.assert_close(
            rec[f"{layer}.attn.resid_delta"], attention_oracle(model, rec, layer), rtol=1e-5, atol=1e-6
        )


def test_sink_at_minus_infinity_equals_no_sink():
    with_sink = make_model(attn_sink=True)
    without = make_model(attn_sink=False)
    state = {n: t for n, t in with_sink.state_dict().items() if not n.endswith("sink")}
    without.load_state_dict(state)
    with torch.no_grad():
        for block in with_sink.blocks:
            block.attn.sink.fill_(float("-inf"))
    torch.testing.assert_close(with_sink(tokens())[0], without(tokens())[0], rtol=1e-5, atol=1e-6)


def test_sink_logit_gets_gradient():
    model = make_model(attn_sink=True).train()
    logits, _ = model(tokens())
    logits.square().mean().backward()
    assert all(block.attn.sink.grad.abs().sum() > 0 for block in model.blocks)


def test_bigram_table_adds_the_current_tokens_row():
    model = make_model()
    x = tokens()
    logits, _ = model(x)
    saved = model.bigram.detach().clone()
    with torch.no_grad():
        model.bigram.zero_()
    without, _ = model(x)
    torch.testing.assert_close(logits - without, saved[x])
    assert "bigram" not in dict(make_model(bigram_table=False).named_parameters())


def test_learned_positions_make_the_output_depend_on_position():
    plain, positional = make_model(pos_emb="none", attn_sink=False), make_model(pos_emb="learned", attn_sink=False)
    assert positional.wpe.weight.shape == (16, 32) and plain.wpe is None
    repeated = torch.full((1, 8), 7)
    # With no positions (and no sink) a constant input looks the same from every position.
    torch.testing.assert_close(plain(repeated)[0][0, 0], plain(repeated)[0][0, -1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(positional(repeated)[0][0, 0], positional(repeated)[0][0, -1])


def test_zeroing_an_mlp_write_equals_removing_that_mlp():
    model = make_model(afrac=0.25)
    x = tokens()
    ablated, _ = model(x, interventions={"0.mlp.resid_delta": torch.zeros_like})
    with torch.no_grad():
        model.blocks[0].mlp.c_proj.weight.zero_()
        model.blocks[0].mlp.c_proj.bias.zero_()
    removed, _ = model(x)
    assert torch.equal(ablated, removed)
    assert not torch.equal(ablated, make_model(afrac=0.25)(x)[0])


def test_identity_interventions_and_recording_leave_logits_bit_identical():
    model = make_model()
    x = tokens()
    plain, nothing = model(x)
    assert nothing == {}
    hooked, recorded = model(
        x, record=set(hook_names(model.config)), interventions={n: (lambda t: t) for n in hook_names(model.config)}
    )
    assert torch.equal(plain, hooked) and len(recorded) == len(hook_names(model.config))


def test_intervention_output_is_what_is_recorded_and_what_flows_on():
    model = make_model()
    x = tokens()
    doubled = lambda t: 2 * t  # noqa: E731
    logits, rec = model(x, record={"1.attn.v", "1.resid_mid"}, interventions={"1.attn.v": doubled})
    _, clean = model(x, record={"1.attn.v"})
    torch.testing.assert_close(rec["1.attn.v"], 2 * clean["1.attn.v"])
    assert not torch.allclose(logits, model(x)[0])


def test_mean_ablation_intervention_is_differentiable():
    model = make_model()
    x = tokens()
    _, rec = model(x, record=r"\d+\.mlp\.post_act")
    means = {n: a.mean(dim=(0, 1)).detach() for n, a in rec.items()}
    gates = {n: torch.full_like(m, 0.5, requires_grad=True) for n, m in means.items()}
    interventions = {n: (lambda t, n=n: t * gates[n] + means[n] * (1 - gates[n])) for n in means}
    logits, _ = model(x, interventions=interventions)
    logits.logsumexp(-1).mean().backward()
    assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in gates.values())


def test_unknown_hook_names_are_errors():
    model = make_model()
    with pytest.raises(KeyError, match="no hook point"):
        model(tokens(), interventions={"0.mlp.post_gelu": torch.zeros_like})
    with pytest.raises(KeyError):
        model(tokens(), record={"0.attn.z"})


# ---------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    model = make_model(pos_emb="learned", afrac=0.125, afrac_locations=["mlp_in", "attn_q"], attn_sink=True)
    save_checkpoint(model, tmp_path)
    loaded = load_checkpoint(tmp_path).eval()
    assert loaded.config == model.config
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == VOCAB
    assert torch.equal(loaded(tokens())[0], model(tokens())[0])


def test_checkpoint_with_unknown_weights_is_refused(tmp_path):
    save_checkpoint(make_model(), tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["blocks.0.attn.extra"] = torch.zeros(3)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected.*blocks.0.attn.extra"):
        load_checkpoint(tmp_path)


def test_checkpoint_whose_config_disagrees_with_its_weights_is_refused(tmp_path):
    save_checkpoint(make_model(bigram_table=True), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "bigram_table": False}))
    with pytest.raises(CheckpointError, match="unexpected.*bigram"):
        load_checkpoint(tmp_path)


def test_checkpoint_config_with_unknown_keys_is_refused(tmp_path):
    save_checkpoint(make_model(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "pfrac": 0.125}))
    with pytest.raises(CheckpointError, match="pfrac"):
        load_checkpoint(tmp_path)


def test_logits_at_positions_equal_the_full_logits_there():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=16, vocab_size=50)).eval()
    tokens = torch.randint(0, 50, (3, 12))
    positions = torch.tensor([11, 0, 5])
    full, _ = model(tokens)
    picked, _ = model(tokens, positions=positions)
    assert picked.shape == (3, 50)
    assert torch.allclose(picked, full[torch.arange(3), positions], atol=1e-6)


def test_rmsnorm_epsilon_defaults_to_the_dtype_epsilon():
    """norm_eps None (the reference release): RMSNorm adds torch.finfo(dtype).eps, not 1e-6."""
    model = make_model()
    assert model.config.norm_eps is None and model.ln_f.eps is None
    x = 1e-4 * torch.randn(2, 5, model.config.d_model)  # a small residual stream, where the epsilon matters
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps) * model.ln_f.weight
    assert torch.allclose(model.ln_f(x), expected, rtol=1e-5, atol=0)
    with_eps = make_model(norm_eps=1e-6)
    assert with_eps.ln_f.eps == 1e-6 and not torch.allclose(with_eps.ln_f(x), expected, rtol=1e-3, atol=0)
