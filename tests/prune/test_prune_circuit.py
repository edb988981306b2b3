"""Edge counting on a hand-built model with a known answer; JSON and HTML export."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest
import torch

from sparsepipe.workers.nn.circuit import build_circuit, circuit_to_json, kept_indices
from sparsepipe.workers.nn.config import ModelConfig
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.nn.masks import NodeLayout
from sparsepipe.workers.prune.circuit_page import render_circuit_html


def hand_built() -> tuple[GPT, dict[str, torch.Tensor]]:
    """Two layers, d_model 4, one head of 2 channels, 3 neurons; a few nonzero weights.

    Layer 0 weights (W[target, source]) and whether both ends are kept:
      q:  act_in1->q0 yes, act_in2->q1 no (act_in 2 not kept)      -> read_q 1
      k:  act_in1->k0 yes                                            -> read_k 1
      v:  act_in3->v1 yes, act_in0->v0 no                            -> read_v 1
      o:  v1->resid_delta2 yes, v0->resid_delta3 no                  -> v_write 1
      fc: mlp_in2->n0 yes, mlp_in0->n2 no                            -> read_neuron 1
      proj: n0->mlp_resid_delta1 yes                                 -> neuron_write 1
    Layer 1 has weights but nothing kept at both ends of any.
    """
    config = ModelConfig(
        n_layer=2,
        d_model=4,
        n_head=1,
        d_head=2,
        d_mlp=3,
        n_ctx=8,
        vocab_size=5,
        afrac=None,
        bigram_table=False,
        attn_sink=False,
    )
    model = GPT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.zero_()
        a0, m0 = model.blocks[0].attn, model.blocks[0].mlp
        a0.c_attn.weight[0, 1], a0.c_attn.weight[1, 2] = 0.5, 0.7  # q rows 0..1
        a0.c_attn.weight[2, 1] = -0.3  # k rows 2..3
        a0.c_attn.weight[5, 3], a0.c_attn.weight[4, 0] = 0.2, 0.9  # v rows 4..5
        a0.c_proj.weight[2, 1], a0.c_proj.weight[3, 0] = 1.1, 0.4
        m0.c_fc.weight[0, 2], m0.c_fc.weight[2, 0] = 0.6, 0.1
        m0.c_proj.weight[1, 0] = -0.8
        model.blocks[1].mlp.c_fc.weight[0, 1] = 1.0  # post_act of layer 1 is not kept
        model.blocks[1].attn.c_attn.weight[0, 2] = 1.0  # q of layer 1 is not kept
        model.blocks[1].ln_1.weight[2] = 0.0  # residual channel 2 never reaches 1.attn.act_in
        model.wte.weight[3, 1], model.wte.weight[0, 2] = 1.0, 1.0  # the embedding writes channels 1 and 2
        model.lm_head.weight[0, 2], model.lm_head.weight[4, 1] = 1.0, -1.0  # candidates 0 and 4
        model.lm_head.weight[4, 3], model.lm_head.weight[1, 2] = 1.0, 1.0  # unkept channel 3; token 1 not a candidate
    kept = {
        "0.attn.act_in": [1, 3], "0.attn.q": [0, 1], "0.attn.k": [0], "0.attn.v": [0, 1], "0.attn.resid_delta": [2],
        "0.mlp.act_in": [2], "0.mlp.post_act": [0, 2], "0.mlp.resid_delta": [1],
        "1.attn.act_in": [2], "1.attn.q": [], "1.attn.k": [], "1.attn.v": [], "1.attn.resid_delta": [],
        "1.mlp.act_in": [1], "1.mlp.post_act": [], "1.mlp.resid_delta": [],
    }  # fmt: skip
    return model, {name: torch.tensor(indices, dtype=torch.long) for name, indices in kept.items()}


def test_edge_counts_on_a_hand_built_model():
    model, kept = hand_built()
    circuit = build_circuit(model, kept, candidate_tokens=torch.tensor([[0, 4], [0, 4]]))
    counts = circuit.counts()
    weight_edges = {"read_q": 1, "read_k": 1, "read_v": 1, "v_write": 1, "read_neuron": 1, "neuron_write": 1}
    assert {kind: counts[kind] for kind in weight_edges} == weight_edges
    assert counts["edges"] == circuit.edges == 6
    assert counts["nodes"] == 14 and counts["total_nodes"] == 2 * (4 + 2 + 2 + 2 + 4 + 4 + 3 + 4)
    # 0.attn.resid_delta[2] -> 0.mlp.act_in[2]; 0.mlp.resid_delta[1] -> 1.mlp.act_in[1];
    # 0.attn.resid_delta[2] -> 1.attn.act_in[2] is cut by that norm's zero weight.
    assert counts["residual"] == 2
    # embedded channels {1, 2} read at 0.attn.act_in[1], 0.mlp.act_in[2], 1.mlp.act_in[1]
    # (1.attn.act_in[2]: norm weight 0)
    assert counts["embed_read"] == 3
    # 0.attn.resid_delta[2] -> token 0 and 0.mlp.resid_delta[1] -> token 4
    assert counts["write_unembed"] == 2
    assert counts["qk_pair"] == 1
    assert counts["edges_with_residual"] == 6 + 2 + 3 + 2


def test_weights_and_endpoints_of_edges():
    model, kept = hand_built()
    circuit = build_circuit(model, kept)
    (v_write,) = [links for links in circuit.links if links.kind == "v_write" and len(links)]
    assert (v_write.source, v_write.target) == ("0.attn.v", "0.attn.resid_delta")
    assert v_write.source_index.tolist() == [1] and v_write.target_index.tolist() == [2]
    assert v_write.weight.tolist() == [torch.tensor(1.1).item()]


def test_kept_indices_from_a_node_mask():
    model, kept = hand_built()
    layout = NodeLayout(model.config)
    mask = torch.zeros(layout.n_nodes)
    for name, indices in kept.items():
        mask[layout.node_slices[name].start + indices] = 1
    recovered = kept_indices(layout.split(mask))
    assert {name: idx.tolist() for name, idx in recovered.items()} == {name: idx.tolist() for name, idx in kept.items()}


def test_json_and_html_export(tmp_path):
    model, kept = hand_built()
    circuit = build_circuit(model, kept, candidate_tokens=torch.tensor([0, 4]))
    means = {name: torch.arange(len(idx) + 8, dtype=torch.float32) for name, idx in kept.items()}
    data = circuit_to_json(circuit, ablation=means, task="toy", checkpoint="hand", losses={"circuit": 0.1})
    data = json.loads(json.dumps(data))  # JSON-able
    assert data["counts"]["edges"] == 6 and len(data["nodes"]) == 14
    assert data["task"] == "toy" and data["kept"]["0.attn.q"] == [0, 1]
    weight_edges = [e for e in data["edges"] if e["kind"] == "read_q"]
    assert weight_edges == [{"kind": "read_q", "source": "0.attn.act_in:1", "target": "0.attn.q:0", "weight": 0.5}]
    page = render_circuit_html(data)
    assert page.startswith("<!doctype html>") and "http" not in page.replace(
        "http://www.w3.org/2000/svg", ""
    )  # no network
    view = embedded_data(page)
    names = [node["name"] for node in view["graph"]["nodes"]]
    assert len(names) == 14 + 2 + 2  # kept nodes + embedded channels {1, 2} + tokens {0, 4}
    assert names[:2] == ["0.attn.act_in[1]", "0.attn.act_in[3]"] and "embed[1]" in names
    assert view["graph"]["columns"][0] == "embed" and view["graph"]["columns"][-1] == "unembed"
    assert [0.5 == link[3] for link in view["graph"]["links"]].count(True) == 1
    assert view["losses"] == {"circuit": 0.1} and "edges" not in view
    ElementTree.fromstring(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])  # well-formed SVG


def embedded_data(page: str) -> dict:
    start = page.index(">", page.index('<script type="application/json" id="circuit-data"')) + 1
    return json.loads(page[start : page.index("</script>", start)])


def test_circuit_page_holds_at_most_the_strongest_edges():
    model, kept = hand_built()
    data = json.loads(json.dumps(circuit_to_json(build_circuit(model, kept, candidate_tokens=torch.tensor([0, 4])))))
    every = embedded_data(render_circuit_html(data))["graph"]["links"]
    page = render_circuit_html(data, max_edges=2)
    links = embedded_data(page)["graph"]["links"]
    assert len(links) == 2 < len(every) and f"the 2 strongest of {len(every)} links" in page
    # The strongest links are kept (|w| 1.1, then one of the two links of |w| 1.0), weak ones dropped.
    assert sorted(abs(link[3]) for link in links) == pytest.approx([1.0, 1.1])


def test_circuit_json_stores_at_most_max_edges_structural_then_strongest():
    """A dense model's near-whole circuit has millions of edges: circuit.json keeps max_edges, counts stay exact."""
    model, kept = hand_built()
    circuit = build_circuit(model, kept, candidate_tokens=torch.tensor([0, 4]))
    every = circuit_to_json(circuit)
    assert "edges_stored" not in every
    structural = [e for e in every["edges"] if "weight" not in e]
    weighted = sorted((abs(e["weight"]) for e in every["edges"] if "weight" in e), reverse=True)
    cap = len(structural) + 2
    data = json.loads(json.dumps(circuit_to_json(circuit, max_edges=cap)))
    assert len(data["edges"]) == cap and data["edges_stored"]["stored"] == cap
    assert data["counts"] == every["counts"]
    assert sum("weight" not in e for e in data["edges"]) == len(structural)
    assert sorted((abs(e["weight"]) for e in data["edges"] if "weight" in e), reverse=True) == weighted[:2]
