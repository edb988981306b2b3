"""The circuit of a pruned model: its kept nodes, the edges between them, JSON export.

What is counted (every count is over nodes kept by the circuit only):

Weight edges -- the paper's circuit-size metric, `edges`. A nonzero entry of a
weight matrix whose input and output nodes are both kept, per layer L:

    read_q / read_k / read_v   L.attn.act_in channel -> L.attn.q/k/v channel   (rows of c_attn)
    v_write                    L.attn.v channel -> L.attn.resid_delta channel   (attn c_proj; a v
                               channel reaches c_proj only through its own head's output)
    read_neuron                L.mlp.act_in channel -> L.mlp.post_act neuron    (mlp c_fc)
    neuron_write               L.mlp.post_act neuron -> L.mlp.resid_delta chan. (mlp c_proj)

Residual-stream links -- counted separately, not part of `edges`:

    residual        a kept write (attn/mlp resid_delta channel c) and a kept read later in the
                    forward (attn/mlp act_in channel c of the same or a later block) on the same
                    residual channel, whose RMSNorm weight at c is nonzero (the stream is an
                    identity map per channel; the norm only rescales it)
    embed_read      a kept read (act_in channel c) whose norm weight at c is nonzero and whose
                    residual channel c receives a nonzero embedding entry (wte[:, c], or wpe[:, c])
                    from any token or position
    write_unembed   a kept write channel c and a candidate token t of the task with
                    lm_head[t, c] != 0 and final-norm weight at c nonzero: one link per (c, t)
    qk_pair         a kept q channel and the kept k channel with the same index in the same
                    layer: one term of an attention score (not a weight; reported for reading)

`edges_with_residual` = edges + residual + embed_read + write_unembed.
The bigram table bypasses the residual stream and is not part of any circuit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .gpt import GPT, node_locations

WEIGHT_EDGE_KINDS = ("read_q", "read_k", "read_v", "v_write", "read_neuron", "neuron_write")
RESIDUAL_KINDS = ("residual", "embed_read", "write_unembed")
EMBED, UNEMBED = "embed", "unembed"


@dataclass
class Links:
    """All links of one kind between two node locations, as parallel index tensors."""

    kind: str
    source: str  # hook name, or "embed"
    target: str  # hook name, or "unembed" (target_index is then a token id)
    source_index: Tensor
    target_index: Tensor
    weight: Tensor | None = None  # the connecting weight, where there is a single one

    def __len__(self) -> int:
        return int(self.source_index.numel())


@dataclass
class Circuit:
    kept: dict[str, Tensor]  # hook name -> sorted kept channel indices, for every node location
    links: list[Links] = field(default_factory=list)
    total_nodes: int = 0

    @property
    def nodes(self) -> int:
        return sum(int(idx.numel()) for idx in self.kept.values())

    def count(self, kind: str) -> int:
        return sum(len(links) for links in self.links if links.kind == kind)

    @property
    def edges(self) -> int:
        """The paper's metric: weight edges among kept nodes."""
        return sum(self.count(kind) for kind in WEIGHT_EDGE_KINDS)

    def counts(self) -> dict[str, int]:
        kinds = {kind: self.count(kind) for kind in (*WEIGHT_EDGE_KINDS, *RESIDUAL_KINDS, "qk_pair")}
        return {
            "nodes": self.nodes,
            "total_nodes": self.total_nodes,
            "edges": self.edges,
            "edges_with_residual": self.edges + sum(kinds[k] for k in RESIDUAL_KINDS),
            **kinds,
        }


def kept_indices(node_mask: dict[str, Tensor]) -> dict[str, Tensor]:
    """{hook: [width] 0/1 mask} -> {hook: sorted kept indices} on the CPU."""
    return {name: torch.nonzero(m.detach().cpu() > 0).flatten() for name, m in node_mask.items()}


def _weight_links(kind: str, weight: Tensor, source: str, target: str, kept: dict[str, Tensor]) -> Links:
    """Nonzero entries of `weight` [target width, source width] between kept nodes."""
    src, dst = kept[source], kept[target]
    block = weight.detach()[dst.to(weight.device)][:, src.to(weight.device)].cpu()
    rows, cols = torch.nonzero(block, as_tuple=True)
    return Links(kind, source, target, src[cols], dst[rows], block[rows, cols].float())


def _channel_links(kind: str, source: str, target: str, channels: Tensor) -> Links:
    """Links that stay on one channel index (the residual stream, q/k pairs)."""
    return Links(kind, source, target, channels, channels)


def _is_member(values: Tensor, width: int) -> Tensor:
    member = torch.zeros(width, dtype=torch.bool)
    member[values] = True
    return member


def build_circuit(model: GPT, kept: dict[str, Tensor], candidate_tokens: Tensor | None = None) -> Circuit:
    """Every link of the circuit that keeps `kept` (hook -> indices) in `model`."""
    locations = node_locations(model.config)
    names = [name for name, _ in locations]
    missing = [name for name in names if name not in kept]
    if missing:
        raise KeyError(f"kept indices missing for node locations {missing}")
    circuit = Circuit(
        kept={name: kept[name].cpu().long() for name in names}, total_nodes=sum(width for _, width in locations)
    )
    inner = model.config.n_head * model.config.d_head
    for layer, block in enumerate(model.blocks):
        read, write = f"{layer}.attn.act_in", f"{layer}.attn.resid_delta"
        for i, part in enumerate("qkv"):
            rows = block.attn.c_attn.weight[i * inner : (i + 1) * inner]
            circuit.links.append(_weight_links(f"read_{part}", rows, read, f"{layer}.attn.{part}", circuit.kept))
        circuit.links.append(_weight_links("v_write", block.attn.c_proj.weight, f"{layer}.attn.v", write, circuit.kept))
        read, neuron, write = f"{layer}.mlp.act_in", f"{layer}.mlp.post_act", f"{layer}.mlp.resid_delta"
        circuit.links.append(_weight_links("read_neuron", block.mlp.c_fc.weight, read, neuron, circuit.kept))
        circuit.links.append(_weight_links("neuron_write", block.mlp.c_proj.weight, neuron, write, circuit.kept))
        q, k = circuit.kept[f"{layer}.attn.q"], circuit.kept[f"{layer}.attn.k"]
        circuit.links.append(
            _channel_links("qk_pair", f"{layer}.attn.q", f"{layer}.attn.k", q[_is_member(k, inner)[q]])
        )
    circuit.links += _residual_links(model, circuit.kept, names)
    circuit.links += _embedding_links(model, circuit.kept, names)
    if candidate_tokens is not None:
        circuit.links += _unembedding_links(model, circuit.kept, names, candidate_tokens)
    return circuit


def _reads(model: GPT, names: list[str], positions: bool = False) -> list[tuple[int, str, Tensor]]:
    """(forward position, read location, channels whose norm weight is nonzero), over the read's whole width.

    With concatenated positions (pos_emb=concat) a read's channels past d_model are position channels, off the
    residual stream: False, or with `positions`, nonzero where their own norm's weight is."""
    reads = []
    for position, name in enumerate(names):
        layer, _, suffix = name.partition(".")
        if suffix in ("attn.act_in", "mlp.act_in"):
            block = model.blocks[int(layer)]
            norm = block.ln_1 if suffix == "attn.act_in" else block.ln_2
            passes = norm.weight.detach().cpu() != 0
            position_norm = block.ln_p1 if suffix == "attn.act_in" else block.ln_p2
            if position_norm is not None:
                tail = position_norm.weight.detach().cpu() != 0
                passes = torch.cat([passes, tail if positions else torch.zeros_like(tail)])
            reads.append((position, name, passes))
    return reads


def _residual_links(model: GPT, kept: dict[str, Tensor], names: list[str]) -> list[Links]:
    width = model.config.d_in  # a write's channels are the first d_model of a read's
    links = []
    reads = _reads(model, names)
    for position, write in enumerate(names):
        if not write.endswith("resid_delta"):
            continue
        written = _is_member(kept[write], width)
        for read_position, read, passes in reads:
            if read_position > position:
                channels = kept[read][(written & passes)[kept[read]]]
                links.append(_channel_links("residual", write, read, channels))
    return links


def _embedding_links(model: GPT, kept: dict[str, Tensor], names: list[str]) -> list[Links]:
    embedded = (model.wte.weight.detach().cpu() != 0).any(dim=0)
    positions = None if model.wpe is None else (model.wpe.weight.detach().cpu() != 0).any(dim=0)
    if positions is not None and model.config.pos_emb == "concat":
        embedded = torch.cat([embedded, positions])  # read channels d_model.. are the position table's
    elif positions is not None:
        embedded |= positions
    return [
        _channel_links("embed_read", EMBED, read, kept[read][(embedded & passes)[kept[read]]])
        for _, read, passes in _reads(model, names, positions=True)
    ]


def _unembedding_links(model: GPT, kept: dict[str, Tensor], names: list[str], candidate_tokens: Tensor) -> list[Links]:
    tokens = torch.unique(candidate_tokens.detach().cpu().flatten())
    rows = model.lm_head.weight.detach()[tokens.to(model.lm_head.weight.device)].cpu()
    unembed = rows.float() * (model.ln_f.weight.detach().cpu() != 0)  # [n_tokens, d_model]
    links = []
    for write in (name for name in names if name.endswith("resid_delta")):
        channels = kept[write]
        token_rows, cols = torch.nonzero(unembed[:, channels], as_tuple=True)
        links.append(
            Links(
                "write_unembed", write, UNEMBED, channels[cols], tokens[token_rows], unembed[token_rows, channels[cols]]
            )
        )
    return links


# ---------------------------------------------------------------------------- export


def node_id(location: str, index: int) -> str:
    """The key of a node in circuit.json: "2.attn.q:17"."""
    return f"{location}:{index}"


def node_name(location: str, index: int) -> str:
    """A node's name in the reference release's convention: "2.attn.q[17]"."""
    return f"{location}[{index}]"


def _stored_links(circuit: Circuit, max_edges: int | None) -> tuple[list[Tensor | None], bool]:
    """Per Links, the indices of the links to store (None: all), and whether some are left out. Over `max_edges`
    links, the structural ones (no single weight: residual, q/k pairs) come first, then the largest |weight|."""
    total = sum(len(links) for links in circuit.links)
    if max_edges is None or total <= max_edges:
        return [None] * len(circuit.links), False
    scores = torch.cat(
        [
            links.weight.abs() if links.weight is not None else torch.full((len(links),), float("inf"))
            for links in circuit.links
        ]
    )
    chosen = torch.zeros(total, dtype=torch.bool)
    chosen[torch.topk(scores, max_edges).indices] = True
    picked, start = [], 0
    for links in circuit.links:
        picked.append(torch.nonzero(chosen[start : start + len(links)]).flatten())
        start += len(links)
    return picked, True


def circuit_to_json(
    circuit: Circuit, ablation: dict[str, Tensor] | None = None, max_edges: int | None = None, **provenance: Any
) -> dict[str, Any]:
    """A JSON-able description: counts, kept nodes, every link (at most `max_edges` of them: a dense model's
    near-whole circuit has millions, one Python dict each; the counts stay exact and `edges_stored` says what
    was kept); `provenance` is merged in as is (task, checkpoint, losses, hyperparameters, ...)."""
    nodes = []
    for location, indices in circuit.kept.items():
        for index in indices.tolist():
            node = {
                "id": node_id(location, index),
                "name": node_name(location, index),
                "location": location,
                "layer": int(location.split(".")[0]),
                "index": index,
            }
            if ablation is not None:
                node["ablation_value"] = float(ablation[location][index])
            nodes.append(node)
    edges = []
    picked, truncated = _stored_links(circuit, max_edges)
    for links, keep in zip(circuit.links, picked):
        sources, targets, weight_values = links.source_index, links.target_index, links.weight
        if keep is not None:
            sources, targets = sources[keep], targets[keep]
            weight_values = weight_values[keep] if weight_values is not None else None
        weights = weight_values.tolist() if weight_values is not None else [None] * len(sources)
        for src, dst, weight in zip(sources.tolist(), targets.tolist(), weights):
            edge = {"kind": links.kind, "source": node_id(links.source, src), "target": node_id(links.target, dst)}
            if weight is not None:
                edge["weight"] = weight
            edges.append(edge)
    return {
        "format": "sparsepipe.circuit/1",
        **provenance,
        "counts": circuit.counts(),
        "kept": {location: indices.tolist() for location, indices in circuit.kept.items()},
        "nodes": nodes,
        "edges": edges,
        **({"edges_stored": {"stored": max_edges, "by": "structural, then largest |weight|"}} if truncated else {}),
    }
