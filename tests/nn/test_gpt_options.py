"""The model options the reference release's checkpoints need, each against a forward written out by hand.

`manual_logits` recomputes the whole forward from the weights with plain tensor algebra (explicit norms,
softmax with the sink column, exact GELU, AbsTopK by sorting), independent of GPT's modules; every option
is checked against it in float64, and checked to change the logits (so the hand computation exercises it).
"""

from __future__ import annotations

import math

import pytest
import torch

from sparsepipe.kernels import abstopk_torch_topk
from sparsepipe.workers.nn.config import ModelConfig
from sparsepipe.workers.nn.gpt import GPT, load_checkpoint, node_locations, save_checkpoint

VOCAB, T = 30, 12


def build(seed: int = 0, **overrides) -> GPT:
    config = ModelConfig(
        **{"n_layer": 2, "d_model": 16, "n_head": 2, "d_head": 4, "n_ctx": 16, "vocab_size": VOCAB, **overrides}
    )
    torch.manual_seed(seed)
    model = GPT(config).double()
    with torch.no_grad():  # every parameter and buffer nonzero and away from 1, so each one matters
        for name, p in model.state_dict(keep_vars=True).items():
            if name.endswith(("bias", "sink")) or name in ("bigram", "final_logits_bias"):
                p.normal_(std=0.3)
            elif ".ln_" in name or name.startswith("ln_"):
                p.uniform_(0.5, 1.5)
            elif name == "wpe.weight":
                p.normal_(std=0.5)
    return model.eval()


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(seed))


def topk_by_sort(x: torch.Tensor, k: int | None) -> torch.Tensor:
    if k is None:
        return x
    order = torch.sort(x.abs(), dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.zeros_like(x).scatter(-1, order, x.gather(-1, order))


def norm(c: ModelConfig, x, weight, bias=None):
    if c.norm == "layer":
        eps = 1e-5 if c.norm_eps is None else c.norm_eps
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        y = (x - mean) / torch.sqrt(var + eps) * weight
        return y + bias if bias is not None else y
    eps = torch.finfo(x.dtype).eps if c.norm_eps is None else c.norm_eps
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def manual_logits(model: GPT, idx: torch.Tensor, config: ModelConfig | None = None) -> torch.Tensor:
    c = config or model.config
    w = {name: t.detach() for name, t in model.state_dict().items()}
    k = {}
    for loc in ("attn_in", "attn_q", "attn_k", "attn_v", "attn_out", "mlp_in", "mlp_neuron", "mlp_out"):
        width = {"attn_q": c.n_head * c.d_head, "attn_k": c.n_head * c.d_head, "attn_v": c.n_head * c.d_head}.get(
            loc,
            c.mlp_width
            if loc == "mlp_neuron"
            else c.d_model + (c.d_pos_emb or 0)
            if loc.endswith("_in")
            else c.d_model,
        )
        k[loc] = max(1, int(c.afrac * width)) if c.afrac and loc in c.afrac_locations else None
    for loc in ("resid_post_attn", "resid_post_mlp"):
        k[loc] = max(1, int(c.afrac * c.d_model)) if c.afrac and loc in c.afrac_locations else None

    def linear(x, prefix):
        y = x @ w[prefix + ".weight"].T
        return y + w[prefix + ".bias"] if prefix + ".bias" in w else y

    def residual(x, loc):
        if c.residual_activation == "relu":
            x = torch.clamp(x, min=0)
        return topk_by_sort(x, k[loc])

    B, n = idx.shape
    x = w["wte.weight"][idx]
    if c.pos_emb == "learned":
        x = x + w["wpe.weight"][:n]
    for layer in range(c.n_layer):
        p = f"blocks.{layer}."
        # attention
        read = norm(c, x, w[p + "ln_1.weight"], w.get(p + "ln_1.bias"))
        if c.pos_emb == "concat":
            pos = norm(c, w["wpe.weight"][:n], w[p + "ln_p1.weight"], w.get(p + "ln_p1.bias"))
            read = torch.cat([read, pos.expand(B, n, -1)], -1)
        read = topk_by_sort(read, k["attn_in"])
        q, kk, v = linear(read, p + "attn.c_attn").chunk(3, -1)
        q, kk, v = topk_by_sort(q, k["attn_q"]), topk_by_sort(kk, k["attn_k"]), topk_by_sort(v, k["attn_v"])
        heads = []
        for h in range(c.n_head):
            s = slice(h * c.d_head, (h + 1) * c.d_head)
            scores = q[..., s] @ kk[..., s].transpose(-1, -2) / math.sqrt(c.d_head)
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
            e = torch.exp(scores - scores.amax(-1, keepdim=True))
            denominator = e.sum(-1, keepdim=True)
            if c.attn_sink:
                denominator = denominator + torch.exp(w[p + "attn.sink"][h] - scores.amax(-1, keepdim=True))
            heads.append((e / denominator) @ v[..., s])
        out = topk_by_sort(linear(torch.cat(heads, -1), p + "attn.c_proj"), k["attn_out"])
        x = residual(x + out, "resid_post_attn")
        # MLP
        read = norm(c, x, w[p + "ln_2.weight"], w.get(p + "ln_2.bias"))
        if c.pos_emb == "concat":
            pos = norm(c, w["wpe.weight"][:n], w[p + "ln_p2.weight"], w.get(p + "ln_p2.bias"))
            read = torch.cat([read, pos.expand(B, n, -1)], -1)
        read = topk_by_sort(read, k["mlp_in"])
        hidden = linear(read, p + "mlp.c_fc")
        hidden = (
            0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2))) if c.activation == "gelu" else hidden.clamp(min=0)
        )
        out = topk_by_sort(linear(topk_by_sort(hidden, k["mlp_neuron"]), p + "mlp.c_proj"), k["mlp_out"])
        x = residual(x + out, "resid_post_mlp")
    unembed = w["wte.weight"] if c.tied_embeddings else w["lm_head.weight"]
    logits = norm(c, x, w["ln_f.weight"], w.get("ln_f.bias")) @ unembed.T
    if c.final_logits_bias:
        logits = logits + w["final_logits_bias"]
    if c.bigram_table:
        logits = logits + w["bigram"][idx]
    return logits


OPTIONS = {
    "default": {},
    "final_logits_bias": {"final_logits_bias": True},
    "learned_positions": {"pos_emb": "learned"},
    "concat_positions": {"pos_emb": "concat", "d_pos_emb": 6},
    "layer_norm": {"norm": "layer"},
    "layer_norm_bias": {"norm": "layer", "norm_bias": True},
    "residual_relu": {"residual_activation": "relu"},
    "residual_abstopk": {"afrac_locations": ["attn_in", "mlp_in", "resid_post_attn", "resid_post_mlp"]},
    "tied_embeddings": {"tied_embeddings": True},
    "no_bias": {"bias": False},
    "release_topk_subset": {"afrac_locations": ["attn_in", "attn_out", "mlp_in", "mlp_out"]},
    "norm_eps": {"norm_eps": 0.5},
    "no_sink_no_bigram_relu": {"attn_sink": False, "bigram_table": False, "activation": "relu"},
    "torch_topk_ties": {"abstopk_ties": "torch_topk"},
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_option_matches_the_hand_computation(option):
    model = build(**OPTIONS[option])
    idx = tokens()
    logits, _ = model(idx)
    assert torch.allclose(logits, manual_logits(model, idx), atol=1e-10, rtol=1e-10)
    # The option matters: the same weights computed without it give other logits (where that is defined).
    if option not in (
        "default",
        "torch_topk_ties",
        "tied_embeddings",
        "no_bias",
        "concat_positions",
        "no_sink_no_bigram_relu",
    ):
        off = model.config.model_copy(update={n: getattr(ModelConfig(), n) for n in OPTIONS[option]})
        assert not torch.allclose(logits, manual_logits(model, idx, off), atol=1e-6)


def test_defaults_keep_the_parameters_of_existing_checkpoints():
    names = set(build().state_dict())
    assert not any("ln_p" in n or n == "final_logits_bias" or n.startswith("ln_f.bias") for n in names)
    assert "lm_head.weight" in names and "blocks.0.attn.c_attn.bias" in names


def test_concat_positions_widen_the_reads_and_the_node_locations():
    model = build(pos_emb="concat", d_pos_emb=6)
    _, recorded = model(tokens(), record=".*")
    widths = dict(node_locations(model.config))
    assert widths["0.attn.act_in"] == widths["1.mlp.act_in"] == 16 + 6
    for name, width in widths.items():
        assert recorded[name].shape[-1] == width
    assert model.blocks[0].attn.c_attn.weight.shape == (3 * 8, 22) and model.blocks[0].mlp.c_fc.weight.shape[1] == 22
    with pytest.raises(ValueError):
        ModelConfig(pos_emb="concat")
    with pytest.raises(ValueError):
        ModelConfig(norm_bias=True)


def test_tied_embeddings_share_one_tensor_and_round_trip(tmp_path):
    model = build(tied_embeddings=True)
    assert model.lm_head.weight is model.wte.weight
    assert "lm_head.weight" not in dict(model.named_parameters())
    save_checkpoint(model.float(), tmp_path)
    loaded = load_checkpoint(tmp_path)
    assert loaded.lm_head.weight is loaded.wte.weight
    assert torch.equal(loaded(tokens())[0], model(tokens())[0])


def test_final_logits_bias_is_a_fixed_buffer_that_round_trips(tmp_path):
    model = build(final_logits_bias=True)
    assert "final_logits_bias" in dict(model.named_buffers())
    assert "final_logits_bias" not in dict(model.named_parameters())
    save_checkpoint(model.float(), tmp_path)
    assert torch.equal(load_checkpoint(tmp_path).final_logits_bias, model.final_logits_bias)


def test_norm_biases_stay_dense():
    roles = build(norm="layer", norm_bias=True).parameter_roles()
    assert roles["blocks.0.ln_1.bias"].kind == "dense" and roles["ln_f.bias"].kind == "dense"
    assert roles["blocks.0.attn.c_attn.bias"].kind == "bias"


def test_tie_rules_differ_only_on_exact_ties():
    x = torch.tensor([[1.0, -2.0, 2.0, 0.5, -2.0]])
    from sparsepipe.kernels import abstopk

    assert abstopk(x, 2).tolist() == [[0.0, -2.0, 2.0, 0.0, 0.0]]  # lowest indices among |x| = 2
    torch_choice = abstopk_torch_topk(x, 2)
    indices = x.abs().topk(2, sorted=False).indices
    assert torch.equal(torch_choice, torch.zeros_like(x).scatter(-1, indices, x.gather(-1, indices)))
    assert (torch_choice.abs() == 2).sum() == 2
    y = torch.randn(4, 50, dtype=torch.float64)
    assert torch.equal(abstopk(y, 7), abstopk_torch_topk(y, 7))
