"""The artifact of one prune cell: circuit.json, circuit.html, result.json, loss_vs_k.png and the metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..context import WorkContext
from ..nn.circuit import build_circuit, circuit_to_json, node_id
from ..nn.masks import NodeLayout, ablation_values, mask_interventions
from ..train.summary import checkpoint_summary
from .circuit_page import render_circuit_html
from .config import PruneConfig
from .inputs import PruneInputs, pretraining_rows
from .intervals import loss_intervals
from .masked import MaskedModel
from .node_examples import node_examples
from .result import CELL_SEPARATOR, CIRCUIT_FILE, CIRCUIT_PAGE, CURVE_PLOT, split_cell, write_result
from .seeds import seed_row, seed_spread
from .trial import TrialResult, loss_without_each_node

# circuit.json keeps at most this many links (the page draws 20,000): a dense model's circuit at its full size
# has millions of weight edges, a Python dict each, which ran a `small`-shape prune cell out of 17 GB.
MAX_STORED_EDGES = 200_000


def plot_loss_vs_size(result: TrialResult, path: Path) -> None:
    """Val loss of the top-k circuits along the ranking against nodes and against edges (the curve behind the
    paper's Fig. 2), the circuit of every swept target (val and test); the numbers beside it (`save_data`)."""
    from ..plots import GRID_ALPHA, LEGEND_FONTSIZE, new_figure, save, save_data

    fig = new_figure(11, 4.5)
    axes = fig.subplots(1, 2, sharey=True)
    curve = [row for row in result.loss_vs_k if row["nodes"] > 0]
    probes = [row for row in result.bisection if row["nodes"] > 0]
    circuits = [row for row in result.sweep if row["nodes"] > 0]
    for axis, size in zip(axes, ("nodes", "edges")):
        points = [row for row in curve if size in row and row[size] > 0]  # results from before edges were recorded
        axis.plot([r[size] for r in points], [r["loss"] for r in points], "o-", ms=3, label="top-k circuit (val)")
        if size == "nodes":
            axis.plot(
                [r["nodes"] for r in probes], [r["loss"] for r in probes], "x", color="black", label="bisection probes"
            )
        for target in sorted({r["target_loss"] for r in result.sweep} | {result.target_loss}):
            axis.axhline(target, color="grey", ls="--", lw=0.8)
        axis.axhline(
            result.full_model_loss, color="tab:green", ls=":", label=f"full model, test {result.full_model_loss:.3g}"
        )
        shown = [r for r in circuits if r[size] > 0]
        axis.plot(
            [r[size] for r in shown],
            [r["selection_loss"] for r in shown],
            "*",
            ms=12,
            color="tab:red",
            label="circuit per target (val)",
        )
        axis.plot(
            [r[size] for r in shown],
            [r["circuit_loss"] for r in shown],
            "D",
            ms=6,
            color="tab:purple",
            label=f"circuit per target, test ({result.test_pairs} pairs)",
        )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(f"{size} kept")
        axis.grid(alpha=GRID_ALPHA, which="both")
    axes[0].set_ylabel(f"two-way task loss ({result.loss_reduction})")
    axes[0].legend(fontsize=LEGEND_FONTSIZE)
    status = "" if result.reached_target else " (target not reached)"
    fig.suptitle(
        f"{result.task}: loss vs circuit size, target {result.target_loss:g}: {result.nodes} nodes, "
        f"{result.edges} edges{status}"
    )
    save(fig, path)
    save_data(
        [{"kind": "curve", **row} for row in result.loss_vs_k]
        + [{"kind": "circuit", **{k: v for k, v in row.items() if k != "kept"}} for row in result.sweep],
        path,
    )


def viewer_sections(
    inputs: PruneInputs, params: PruneConfig, result: TrialResult, layout: NodeLayout, ablation: Tensor
) -> dict[str, Any]:
    """circuit.json's "node_ablation" (test loss with each node removed, for circuits of at most
    viewer.ablate_each_max_nodes nodes) and "activations" (`node_examples`) for the circuit page."""
    viewer, model = params.viewer, inputs.model
    device = next(model.parameters()).device
    masked = MaskedModel(model, layout, ablation)
    circuit_mask = layout.flatten(
        {
            name: torch.zeros(width).index_fill_(0, torch.tensor(result.kept[name], dtype=torch.long), 1.0)
            for name, width in layout.locations
        }
    ).to(device)
    test = inputs.task_data.test.to(device)
    sections: dict[str, Any] = {}
    if 0 < result.nodes <= viewer.ablate_each_max_nodes:
        names = {
            position: node_id(name, position - s.start)
            for name, s in layout.node_slices.items()
            for position in range(s.start, s.stop)
        }
        losses = loss_without_each_node(masked, test, circuit_mask, params.batch_pairs, params.loss_reduction)
        sections["node_ablation"] = {
            "split": "test",
            "circuit": result.circuit_loss,
            "full_model": result.full_model_loss,
            "without_node": {names[position]: loss for position, loss in losses.items()},
        }
    rows = pretraining_rows(inputs.tokens, viewer.example_rows)[:, : model.config.n_ctx]
    interventions = mask_interventions(layout, circuit_mask, masked.ablation)
    pairs = test.select(range(min(viewer.task_pairs, test.n_pairs)))
    sections["activations"] = node_examples(model, rows, pairs, result.kept, interventions, inputs.tokenizer, viewer)
    return sections


def report_mask_training(ctx: WorkContext, result: TrialResult) -> None:
    """The written circuit's mask-training curve as tracker scalars (TensorBoard, MLflow, W&B; see WorkContext)."""
    for row in result.train_history:
        scalars = {"prune/task_loss": row["task_loss"], "prune/nodes": row["nodes"], "prune/lr": row["lr"]}
        ctx.report({"step": row["step"], "scalars": scalars})


def write_prune_outputs(
    ctx: WorkContext,
    inputs: PruneInputs,
    params: PruneConfig,
    result: TrialResult,
    seeds: list[dict[str, Any]] | None = None,
) -> None:
    """The artifact of one trial's circuit: circuit.json, circuit.html, result.json, loss_vs_k.png and ctx.metrics.

    `seeds`: the `prune.seeds` rows (`seeds.seed_row`), the written trial's first; None: that trial alone.
    result.json adds them, their `seed_spread` and the bootstrap `intervals` of every reported loss."""
    report_mask_training(ctx, result)
    model, means, task_data = inputs.model, inputs.means, inputs.task_data
    layout = NodeLayout(model.config, tie_qk=params.tie_qk_masks)
    ablation = ablation_values(layout, means, params.ablation)
    ablated_to = layout.split(ablation)
    circuit = build_circuit(
        model,
        {name: torch.tensor(idx, dtype=torch.long) for name, idx in result.kept.items()},
        task_data.eval.candidates,
    )
    candidate_ids = torch.unique(task_data.eval.candidates).tolist()
    # The checkpoint by name ("pretrain/tiny"), not by the folder it was fetched to, which differs per store and
    # per run: artifacts hold only what they computed, so the same inputs give the same files (and keys) anywhere.
    checkpoint = split_cell(ctx.cell)[0] if CELL_SEPARATOR in ctx.cell else str(inputs.checkpoint)
    circuit_data = circuit_to_json(
        circuit,
        ablation=ablated_to,
        max_edges=MAX_STORED_EDGES,
        task=result.task,
        cell=ctx.cell,
        checkpoint=checkpoint,
        model=model.config.model_dump(mode="json"),
        losses={
            "target": result.target_loss,
            "circuit": result.circuit_loss,
            "binarized": result.binarized_loss,
            "binarized_init": result.binarized_init_loss,
            "calibrated": result.calibrated_loss,
            "full_model": result.full_model_loss,
            "inverse": result.inverse_loss,
            "random_circuit": result.random_circuit_loss,
            "selection_val": result.selection_loss,
        },
        evaluation={
            "reported_split": "test",
            "test_pairs": result.test_pairs,
            "selection_split": "val",
            "mask_training_split": "train",
            "pairs": result.pairs,
            "loss_reduction": result.loss_reduction,
            "test_reached_target": result.test_reached_target,
        },
        reached_target=result.reached_target,
        circuit_kind=result.circuit,
        calibration={"logit_scale": result.logit_scale, "logit_bias": result.logit_bias},
        hyperparameters=result.hyper,
        settings=params.model_dump(mode="json", exclude={"hyper", "tasks", "checkpoints"}),
        token_text={str(i): inputs.tokenizer.decode([i]) for i in candidate_ids},
        **viewer_sections(inputs, params, result, layout, ablation),
    )
    out = Path(ctx.out_dir)
    # Timings go to the manifest's metrics, not into the artifact (they differ on every run).
    computed = {name: value for name, value in result.to_json().items() if name != "timings"}
    model_info = checkpoint_summary(inputs.checkpoint, model)
    seed_rows = seeds if seeds is not None else [seed_row(computed)]
    spread = {
        "seeds": seed_rows,
        "seed_spread": seed_spread(seed_rows),
        "intervals": loss_intervals(result.test_pair_losses),
    }
    write_result(
        out,
        {
            "cell": ctx.cell,
            "checkpoint": checkpoint,
            "model_info": model_info,
            "tuned_target": params.target_loss,
            **computed,
            **spread,
        },
    )
    (out / CIRCUIT_FILE).write_text(json.dumps(circuit_data, indent=1))
    (out / CIRCUIT_PAGE).write_text(render_circuit_html(circuit_data))
    plot_loss_vs_size(result, out / CURVE_PLOT)
    ctx.metrics.update(
        {
            "nodes": result.nodes,
            "edges": result.edges,
            "edges_with_residual": result.edge_counts["edges_with_residual"],
            "total_nodes": result.total_nodes,
            "target_loss": result.target_loss,
            "loss_reduction": result.loss_reduction,
            "reached_target": result.reached_target,
            "circuit": result.circuit,
            "selection_loss": result.selection_loss,
            "test_reached_target": result.test_reached_target,
            "test_pairs": result.test_pairs,
            "circuit_loss": result.circuit_loss,
            "binarized_loss": result.binarized_loss,
            "binarized_init_loss": result.binarized_init_loss,
            "calibrated_loss": result.calibrated_loss,
            "full_model_loss": result.full_model_loss,
            "inverse_loss": result.inverse_loss,
            "random_circuit_loss": result.random_circuit_loss,
            "seconds": result.timings["total_s"],
            "timings": result.timings,
            "cost": result.cost,
            "sweep": [{key: value for key, value in row.items() if key != "kept"} for row in result.sweep],
            "pretrain_val_loss": model_info["val_loss"],
            "seed_spread": spread["seed_spread"],
            "intervals": spread["intervals"],
        }
    )
