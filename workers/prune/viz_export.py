"""A circuit in the reference release's viewer format: `viz/<model>/<task>/<sweep>/<k>/viz_data.pt`.

The release's Streamlit viewer (openai/circuit_sparsity `viz.py`) reads one `viz_data.pt` per circuit with
`torch.load(weights_only=True)`; its loading code (`load_data`, `load_graph_data`) and the viewer read:

- circuit_data[loc]: the kept channel indices (LongTensor) at every node location;
- samples[loc][ch][frac] = (bottom, top) for frac in 0.001, 0.01, 0.1, 0.5: lists of (row tokens, the node's
  activation at every position of the row, position) from pretraining rows;
- importances: loss / interv_loss (full model / circuit), ch_interv_losses[loc] (the circuit's loss with each
  node also ablated, in circuit_data order), all three stored x2 (the release's per-pair sum, as its viewer
  says), layer_interv_losses["i.attn" | "i.mlp"] (each layer part's circuit nodes ablated, not x2: the viewer
  subtracts interv_loss / 2 from them), pair_data (within-layer edge matrices [src kept, tgt kept] with the
  source and target ids and locations), pair_data_connections (the viewer does not use it: empty),
  task_samples (docs [N, T] zero-padded, the first half one class and the second half the other, paired by
  index; acts[loc][ch] [N, T]) and beeg_model_config (the release's config: imported/release.py);
- all_loss (the mask-training (step, loss) curve), num_total_nodes, prune_config.

Every number comes from the runnable circuit (`runnable.Circuit`): its ablation (MaskedModel), its losses
(`loss_without_each_node` of the trial, the same two-way loss), its model's weights (`nn.circuit` links).
Activations are recorded with the circuit's interventions, as the circuit page's examples are.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..imported.release import release_config
from ..nn.circuit import build_circuit
from .losses import chunks, two_way_loss
from .runnable import Circuit
from .trial import loss_without_each_node

VIZ_FILE = "viz_data.pt"
FRACS = (0.001, 0.01, 0.1, 0.5)
SAMPLES_PER_FRAC = 5
# Within-layer edges the viewer draws, by our link kind: (source location, target location) suffixes.
PAIRS = {
    "read_q": ("attn.act_in", "attn.q"),
    "read_k": ("attn.act_in", "attn.k"),
    "read_v": ("attn.act_in", "attn.v"),
    "v_write": ("attn.v", "attn.resid_delta"),
    "read_neuron": ("mlp.act_in", "mlp.post_act"),
    "neuron_write": ("mlp.post_act", "mlp.resid_delta"),
}


def _kept(circuit: Circuit) -> dict[str, Tensor]:
    return {name: torch.tensor(circuit.kept.get(name, []), dtype=torch.long) for name in circuit.layout.names}


def _release_scale(circuit: Circuit) -> float:
    """Factor from our reported loss to the release's stored one (its per-pair sum)."""
    return 2.0 if circuit.settings.loss_reduction == "mean" else 1.0


def pair_data(circuit: Circuit) -> list[list[Any]]:
    """[edge matrix [n_src, n_tgt], src ids, tgt ids, (src loc, tgt loc)] for every within-layer pair."""
    kept = _kept(circuit)
    links = build_circuit(circuit.model, kept).links
    found = []
    for layer in range(circuit.model.config.n_layer):
        for kind, (source, target) in PAIRS.items():
            src, tgt = f"{layer}.{source}", f"{layer}.{target}"
            matrix = torch.zeros(len(kept[src]), len(kept[tgt]))
            for group in (g for g in links if g.kind == kind and g.source == src and g.target == tgt):
                rows = torch.searchsorted(kept[src], group.source_index)
                columns = torch.searchsorted(kept[tgt], group.target_index)
                matrix[rows, columns] = group.weight.float().cpu()
            found.append([matrix, kept[src].tolist(), kept[tgt].tolist(), (src, tgt)])
    return found


@torch.no_grad()
def _recorded(circuit: Circuit, tokens: Tensor) -> dict[str, Tensor]:
    """Every node location's activations [B, T, width] on `tokens`, under the circuit's interventions."""
    interventions = circuit.masked.interventions(circuit.node_mask("circuit"))
    _, recorded = circuit.model(tokens.to(circuit.device), record=circuit.layout.names, interventions=interventions)
    return {name: values.float().cpu() for name, values in recorded.items()}


def pretraining_samples(circuit: Circuit, rows: Tensor) -> dict[str, dict[int, dict[float, tuple[list, list]]]]:
    """samples[loc][ch][frac] = (bottom, top): up to SAMPLES_PER_FRAC (row tokens, row activations, position)
    spread evenly over the lowest and the highest `frac` of the node's activations on `rows` [N, T]."""
    recorded = _recorded(circuit, rows)
    samples: dict[str, dict[int, dict[float, tuple[list, list]]]] = {}
    for name, channels in circuit.kept.items():
        samples[name] = {}
        for channel in channels:
            values = recorded[name][:, :, channel]  # [N, T]
            order = torch.argsort(values.flatten())
            bands: dict[float, tuple[list, list]] = {}
            for frac in FRACS:
                size = max(1, math.ceil(frac * order.numel()))
                picks = [order[:size], order.flip(0)[:size]]
                bands[frac] = tuple(  # type: ignore[assignment]
                    [
                        (rows[i // values.shape[1]].clone(), values[i // values.shape[1]].clone(), i % values.shape[1])
                        for i in band[
                            torch.linspace(0, len(band) - 1, min(SAMPLES_PER_FRAC, len(band))).long()
                        ].tolist()
                    ]
                    for band in picks
                )
            samples[name][int(channel)] = bands
    return samples


def task_samples(circuit: Circuit, pairs: int) -> tuple[Tensor, dict[str, dict[int, Tensor]]]:
    """(docs [2P, T]: the first prompt of P test pairs, then their second prompts, zero-padded; the circuit's
    activations acts[loc][ch] [2P, T] on them, zero after each prompt's end)."""
    test = circuit.pairs("test")
    batch = test.select(range(min(pairs, test.n_pairs)))
    order = torch.cat([torch.arange(0, len(batch), 2), torch.arange(1, len(batch), 2)])
    tokens, ends = batch.tokens[order], batch.eval_pos[order]
    real = torch.arange(tokens.shape[1])[None, :] <= ends[:, None]
    recorded = _recorded(circuit, tokens)
    acts = {
        name: {int(ch): recorded[name][:, :, ch] * real for ch in channels} for name, channels in circuit.kept.items()
    }
    return tokens * real, acts


@torch.no_grad()
def importances(circuit: Circuit, task_pairs: int) -> dict[str, Any]:
    scale = _release_scale(circuit)
    test = circuit.pairs("test").to(circuit.device)
    mask = circuit.node_mask("circuit")
    reduction, batch_pairs = circuit.settings.loss_reduction, circuit.settings.batch_pairs
    without = loss_without_each_node(circuit.masked, test, mask, batch_pairs, reduction)
    layout = circuit.layout
    per_node = {
        name: [scale * without[layout.node_slices[name].start + index] for index in circuit.kept.get(name, [])]
        for name in layout.names
    }
    layer_losses = {}
    for layer in range(circuit.model.config.n_layer):
        for part in ("attn", "mlp"):
            reduced = mask.clone()
            for name in layout.names:
                if name.startswith(f"{layer}.{part}."):
                    reduced[layout.node_slices[name]] = 0
            gaps = circuit.masked.gaps(chunks(test, batch_pairs), reduced)
            layer_losses[f"{layer}.{part}"] = scale / 2 * float(two_way_loss(gaps, test.correct, reduction=reduction))
    config = release_config(circuit.model.config)
    return {
        "loss": scale * circuit.loss(test, ablate="none"),
        "interv_loss": scale * circuit.loss(test, ablate="circuit"),
        "ch_interv_losses": per_node,
        "layer_interv_losses": layer_losses,
        "pair_data": pair_data(circuit),
        "pair_data_connections": [],
        "task_samples": task_samples(circuit, task_pairs),
        "beeg_model_config": config,
    }


def viz_data(circuit: Circuit, rows: Tensor, tokenizer_name: str, task_pairs: int = 16) -> dict[str, Any]:
    """The viewer's viz_data dict for `circuit`, with pretraining samples from `rows` [N, T]."""
    found = importances(circuit, task_pairs)
    found["beeg_model_config"]["tokenizer_name"] = tokenizer_name
    history = circuit.result.get("train_history", [])
    return {
        "circuit_data": _kept(circuit),
        "samples": pretraining_samples(circuit, rows),
        "importances": found,
        "all_loss": [(int(row["step"]), _release_scale(circuit) * float(row["task_loss"])) for row in history],
        "num_total_nodes": circuit.layout.n_nodes,
        "prune_config": {**circuit.settings.model_dump(mode="json"), "hyper": circuit.result.get("hyper", {})},
    }


def write_viz_data(data: dict[str, Any], root: Path, model_name: str, task: str, sweep: str, k: int) -> Path:
    """Save under the release's blob layout: root/viz/<model>/<task>/<sweep>/<k>/viz_data.pt."""
    folder = Path(root) / "viz" / model_name / task / sweep / str(k)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(data, folder / VIZ_FILE)
    return folder / VIZ_FILE
