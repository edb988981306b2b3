"""The bridges stage worker: train a weight-sparse model with bridges to the frozen dense model.

Inputs: "tokens" (the tokenize artifact) and "dense" (the dense checkpoint).
The training loop, resume, NaN checks, progress reports and data-parallel
training (`execution.train_workers`) are pretrain's (`train.worker.train_cell`);
the step is `Trainer.train_step` with the bridges as
extra parameters and `BridgeObjective.loss` as the loss; weight sparsity and
its schedule apply to the sparse model only, exactly as in pretrain.

Outputs in ctx.out_dir:
  model.safetensors + config.json   the bridged sparse model, a checkpoint mean_cache and prune accept
  train_config.json, metrics.jsonl, curves.png      as pretrain writes them (rows also hold
                                    dense_val_loss and NMSE / KL per location and direction)
  bridges.safetensors + bridges.json                the encoders and decoders
  bridges_curves.png                NMSE and KL sums vs step
  interventions/<task>.json, .png   A.4 steering curves (see interventions.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from ..context import WorkContext
from ..nn.config import TrainConfig
from ..nn.gpt import GPT, load_checkpoint
from ..nn.training import Trainer
from ..plots import GRID_ALPHA, LEGEND_FONTSIZE, new_figure, save
from ..train.loop import TrainingJob
from ..train.worker import train_cell, write_outputs
from .bridges import (
    DIRECTIONS,
    BridgeEval,
    BridgeObjective,
    Bridges,
    RankSpread,
    check_bridgeable,
    evaluate_bridges,
    save_bridges,
)
from .config import BridgesConfig
from .interventions import default_node, intervention_curve, parse_node, residual_rms, strengths_of

CURVES_FILE = "bridges_curves.png"
INTERVENTIONS_DIR = "interventions"


@dataclass
class BridgesJob(TrainingJob):
    objective: BridgeObjective  # the frozen dense model, the sparse model and the bridges

    def join_ranks(self, world: int, all_sum: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.objective.rank_spread = RankSpread(world, all_sum)  # NMSE normalisers over the global batch


def bridges_job(config: BridgesConfig, train: TrainConfig, inputs: dict[str, Path], device: torch.device) -> BridgesJob:
    """The sparse model and the bridges, trained against the frozen dense model (a train.loop.JobBuilder)."""
    dense = load_checkpoint(inputs["dense"], device=device).eval().requires_grad_(False)
    check_bridgeable(dense.config, train.model)
    torch.manual_seed(train.seed)
    sparse = GPT(train.model).to(device)
    bridges = Bridges(dense.config, sparse.config, config.encoder_afrac).to(device)
    objective = BridgeObjective(dense, sparse, bridges, config)
    trainer = Trainer(sparse, train, extra=bridges)
    trainer.begin_step = objective.begin_step  # NMSE's normaliser is the whole step batch's, not a microbatch's
    return BridgesJob(trainer, lambda batches: evaluate_bridges(objective, batches), objective.loss, objective)


def run_bridges(ctx: WorkContext, config: BridgesConfig) -> None:
    cell = train_cell(ctx, config.train, partial(bridges_job, config), tokens_input="tokens")
    objective, final, log = cell.job.objective, cell.final, cell.log
    write_outputs(ctx, cell.train, objective.sparse, final, log, cell.tokens_root, cell.val_batches)
    out = Path(ctx.out_dir)
    save_bridges(objective.bridges, out)
    plot_bridge_curves(log.history, out / CURVES_FILE)
    ctx.metrics.update(bridge_metrics(final, log.history))
    if config.interventions.tasks:
        steps = cell.train.steps
        ctx.report({"completed": steps, "total": steps, "description": "interventions"})
        ctx.metrics["interventions"] = run_interventions(
            objective.dense,
            objective.sparse,
            objective.bridges,
            config,
            cell.tokens_root,
            cell.val_batches,
            out / INTERVENTIONS_DIR,
        )


def bridge_metrics(final: BridgeEval, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Final val numbers, and the first evaluation's sums to show what training changed."""
    first = next(row for row in history if row.get("val_loss") is not None)
    metrics: dict[str, Any] = {"dense_val_loss": final.dense_loss, "sparse_val_loss": final.loss}
    for kind in ("nmse", "kl"):
        for direction in DIRECTIONS:
            metrics[f"{kind}_{direction}"] = final.terms[f"{kind}_{direction}"]
            metrics[f"{kind}_{direction}_sum"] = final.terms[f"{kind}_{direction}_sum"]
            metrics[f"{kind}_{direction}_sum_first_eval"] = first[f"{kind}_{direction}_sum"]
    metrics["first_eval_step"] = first["step"]
    return metrics


def run_interventions(
    dense: GPT,
    sparse: GPT,
    bridges: Bridges,
    config: BridgesConfig,
    tokens_root: Path,
    reference: list[torch.Tensor],
    folder: Path,
) -> dict[str, Any]:
    """One curve per task, with its controls, on the task's test pairs (never used to choose anything here); a
    task this tokenizer cannot encode is reported, not fatal."""
    from ...tasks import TaskError, load_task, load_tokenizer

    settings = config.interventions
    tokenizer = load_tokenizer(tokens_root)
    batches = reference[: settings.reference_batches]
    rms_sparse, rms_dense = residual_rms(sparse.eval(), batches), residual_rms(dense, batches)
    device = next(dense.parameters()).device
    results: dict[str, Any] = {}
    for task in settings.tasks:
        spec = settings.nodes.get(task)
        node = parse_node(spec, sparse.config.n_layer) if spec else default_node(task, sparse.config.n_layer)
        try:
            batch = load_task(
                task, tokenizer, "test", settings.pairs, settings.seed, min(settings.max_tokens, sparse.config.n_ctx)
            ).to(device)
            curve = intervention_curve(
                dense,
                sparse,
                bridges.eval(),
                batch,
                node,
                strengths_of(settings),
                rms_sparse,
                rms_dense,
                decode=lambda token: tokenizer.decode([token]),
                seed=settings.seed,
                present_second=task in settings.present_second,
                controls=settings.controls,
            )
        except (TaskError, ValueError) as error:
            results[task] = {"skipped": str(error)}
            continue
        curve.write(folder)
        results[task] = curve.summary()
    return results


def plot_bridge_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Val NMSE and KL sums (over locations) vs step, both directions; val CE of both models."""
    evals = [row for row in history if row.get("val_loss") is not None and "nmse_d2s_sum" in row]
    fig = new_figure(11, 3.6)
    nmse_ax, kl_ax, ce_ax = fig.subplots(1, 3)
    steps = [row["step"] for row in evals]
    for direction, label in (("d2s", "dense -> sparse (encoders)"), ("s2d", "sparse -> dense (decoders)")):
        nmse_ax.plot(steps, [row[f"nmse_{direction}_sum"] for row in evals], "o-", ms=3, label=label)
        kl_ax.plot(steps, [row[f"kl_{direction}_sum"] for row in evals], "o-", ms=3, label=label)
    ce_ax.plot(steps, [row["val_loss"] for row in evals], "o-", ms=3, label="bridged sparse")
    ce_ax.plot(steps, [row["dense_val_loss"] for row in evals], "--", label="dense (frozen)")
    for ax, title in (
        (nmse_ax, "NMSE, sum over locations"),
        (kl_ax, "KL(dense || hybrid), sum over locations"),
        (ce_ax, "val CE (nats)"),
    ):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=GRID_ALPHA)
        ax.legend(fontsize=LEGEND_FONTSIZE)
    nmse_ax.set_yscale("log")
    kl_ax.set_yscale("log")
    save(fig, path)
