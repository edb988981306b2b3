"""One interventions cell: the bridged sparse model's circuit of a task, its read nodes ranked by ablation, and the
Fig. 9 curve of the top one with its controls (`bridges.interventions`).

1. Rank. Every node of the circuit at a post-norm residual read (`L.attn.act_in`, `L.mlp.act_in`: the nodes a bridge
   can steer through, A.4) is ablated on its own, the rest of the circuit kept, with the prune cell's ablation and
   settings; the rank is by how much the task loss rises, on the task's val pairs (a choice, so never on test).
   A circuit with more than `bridges.interventions.rank_max_nodes` read nodes has only that many ablated, those
   the first-order estimate (the mask's gradient, one backward) puts first.
2. Steer (`bridges.interventions.intervention_curve`) through the top node, or through the node that
   `bridges.interventions.nodes` names for the task (the paper chooses by hand); the random-channel control draws
   from the read's channels outside the circuit. Curves on the test pairs.

Writes interventions/<task>.json and .png (the layout of a bridges artifact, so the report shows them the same way)
and ranking.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...tasks import TaskBatch, load_task
from ..bridges.bridges import load_bridges
from ..bridges.config import InterventionConfig
from ..bridges.interventions import (
    InterventionCurve,
    NodeSpec,
    intervention_curve,
    parse_node,
    residual_rms,
    strengths_of,
)
from ..context import WorkContext
from ..nn.circuit import node_name
from ..nn.gpt import GPT, load_checkpoint
from ..nn.masks import NodeLayout, ablation_values
from ..prune.config import PruneConfig
from ..prune.inputs import PruneInputs, load_prune_inputs
from ..prune.losses import chunks, two_way_loss
from ..prune.masked import MaskedModel
from ..prune.result import CIRCUIT_FILE, read_result
from ..prune.trial import loss_without_each_node
from ..shard_loader import ShardLoader

INTERVENTIONS_DIR = "interventions"
RANKING_FILE = "ranking.json"
READ_SUFFIXES = (".attn.act_in", ".mlp.act_in")


def first_order_increase(
    masked: MaskedModel, val: TaskBatch, circuit: Tensor, batch_pairs: int, reduction: str
) -> Tensor:
    """[n_nodes] the first-order rise of the val loss when one node's mask goes from 1 to 0, for every node at once:
    minus the loss's gradient with respect to the mask (attribution patching: one forward and backward)."""
    mask = circuit.clone().requires_grad_(True)
    gaps = torch.cat([masked.gap(piece, mask) for piece in chunks(val, batch_pairs)])
    (gradient,) = torch.autograd.grad(two_way_loss(gaps, val.correct, reduction=reduction), mask)
    return -gradient


def rank_read_nodes(
    inputs: PruneInputs, kept: dict[str, list[int]], settings: PruneConfig, max_nodes: int
) -> tuple[list[dict[str, Any]], int]:
    """The circuit's read nodes, the most important first: {node, location, channel, loss_without, increase} with
    the val loss of the circuit without that node alone and its rise over the whole circuit's val loss; and how many
    read nodes the circuit has. Past `max_nodes` read nodes only that many are ablated: those whose first-order
    estimate of the rise is largest (a circuit cut short, e.g. 2 mask steps at real shapes, keeps thousands)."""
    model = inputs.model
    device = next(model.parameters()).device
    layout = NodeLayout(model.config, tie_qk=settings.tie_qk_masks)
    masked = MaskedModel(model, layout, ablation_values(layout, inputs.means, settings.ablation))
    circuit = torch.zeros(layout.n_nodes)
    for name, channels in kept.items():
        circuit[layout.node_slices[name].start + torch.tensor(channels, dtype=torch.long)] = 1.0
    reads = {name: s for name, s in layout.node_slices.items() if name.endswith(READ_SUFFIXES)}
    only_reads = torch.zeros(layout.n_nodes)
    for s in reads.values():
        only_reads[s] = 1.0
    val = inputs.task_data.eval.to(device)
    reduction = settings.loss_reduction
    whole = float(
        two_way_loss(
            masked.gaps(chunks(val, settings.batch_pairs), circuit.to(device)), val.correct, reduction=reduction
        )
    )
    # Ablating one node at a time costs a pass of the val pairs per node: only the read nodes are ranked.
    positions = torch.nonzero(circuit * only_reads).flatten().tolist()
    read_nodes = len(positions)
    if read_nodes > max_nodes:
        estimate = first_order_increase(masked, val, circuit.to(device), settings.batch_pairs, reduction).cpu()
        positions = sorted(positions, key=lambda position: -float(estimate[position]))[:max_nodes]
    losses = loss_without_each_node(masked, val, circuit.to(device), settings.batch_pairs, reduction, positions)
    ranked = []
    for position, loss in losses.items():
        name, s = next((name, s) for name, s in reads.items() if s.start <= position < s.stop)
        channel = position - s.start
        ranked.append(
            {
                "node": node_name(name, channel),
                "location": name,
                "channel": channel,
                "loss_without": loss,
                "increase": loss - whole,
            }
        )
    return sorted(ranked, key=lambda row: -row["increase"]), read_nodes


def chosen_node(task: str, settings: InterventionConfig, ranked: list[dict[str, Any]], n_layer: int) -> NodeSpec:
    given = settings.nodes.get(task)
    if given:
        node = parse_node(given, n_layer)
        if node.channel is not None:
            return node
        ranked = [row for row in ranked if row["location"] == node.hook]
    if not ranked:
        raise ValueError(
            f"the {task} circuit keeps no node at a post-norm read (L.attn.act_in / L.mlp.act_in)"
            + (f" of {given}" if given else "")
            + ": there is no circuit node to steer through; name one in bridges.interventions.nodes"
        )
    top = ranked[0]
    return parse_node(top["node"], n_layer)


def run_circuit_intervention(ctx: WorkContext, task: str, settings: InterventionConfig, batch_size: int) -> None:
    torch.set_num_threads(ctx.num_threads)
    circuit_folder = ctx.input("circuit")
    circuit = json.loads((circuit_folder / CIRCUIT_FILE).read_text())
    kept = read_result(circuit_folder).kept
    prune = PruneConfig.model_validate(circuit["settings"])
    mean_cache = ctx.input("mean_cache") if prune.ablation == "mean" else None
    tokens = ctx.input("tokens")
    inputs = load_prune_inputs(ctx.input("bridges"), mean_cache, tokens, task, prune, ctx.device)
    dense = load_checkpoint(ctx.input("dense"), device=ctx.device).eval().requires_grad_(False)

    ranked, read_nodes = rank_read_nodes(inputs, kept, prune, settings.rank_max_nodes)
    out = Path(ctx.out_dir)
    ranking = {"split": "val", "read_nodes": read_nodes, "ablated": len(ranked), "nodes": ranked}
    (out / RANKING_FILE).write_text(json.dumps(ranking, indent=1))
    try:
        curve = steer(inputs, dense, tokens, task, settings, batch_size, ranked, kept, ctx.device)
    except ValueError as error:  # no circuit node to steer through, or no pair of equal token length: a result
        ctx.metrics.update({"skipped": str(error), "circuit_read_nodes": read_nodes})
        return
    curve.write(out / INTERVENTIONS_DIR)
    rank = next((i for i, row in enumerate(ranked) if row["node"] == curve.node), None)
    ctx.metrics.update(
        {
            **curve.summary(),
            "node_rank": rank,
            "node_loss_increase": ranked[rank]["increase"] if rank is not None else None,
            "circuit_read_nodes": read_nodes,
        }
    )


def steer(
    inputs: PruneInputs,
    dense: GPT,
    tokens: Path,
    task: str,
    settings: InterventionConfig,
    batch_size: int,
    ranked: list[dict[str, Any]],
    kept: dict[str, list[int]],
    device: str,
) -> InterventionCurve:
    """The Fig. 9 curve of the chosen node, on the task's test pairs."""
    sparse = inputs.model
    node = chosen_node(task, settings, ranked, sparse.config.n_layer)
    bridges = load_bridges(inputs.checkpoint, dense.config, sparse.config).to(device).eval()

    reference = [
        b.to(device) for b in ShardLoader(tokens, "val", batch_size).iter_eval(settings.reference_batches)
    ]  # pretraining text
    rms_sparse, rms_dense = residual_rms(sparse, reference), residual_rms(dense, reference)
    max_tokens = min(settings.max_tokens, sparse.config.n_ctx)
    batch = load_task(task, inputs.tokenizer, "test", settings.pairs, settings.seed, max_tokens).to(device)
    curve = intervention_curve(
        dense,
        sparse,
        bridges,
        batch,
        node,
        strengths_of(settings),
        rms_sparse,
        rms_dense,
        decode=lambda token: inputs.tokenizer.decode([token]),
        seed=settings.seed,
        exclude=set(kept.get(node.hook, [])),
        present_second=task in settings.present_second,
        controls=settings.controls,
    )
    curve.channel_choice = "given" if settings.nodes.get(task) else "largest single-node ablation (val)"
    return curve
