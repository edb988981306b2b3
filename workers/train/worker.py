"""The pretrain stage (and the dense stage): train one model on the token shards.

One loop for sparse and dense models (`TrainConfig.sparsity.enabled`), in loop.py; `train_cell` runs
it in this process or, with `execution.train_workers` > 1, on Ray Train workers (parallel.py).

Outputs in ctx.out_dir: model.safetensors + config.json (see nn.gpt.load_checkpoint),
train_config.json, metrics.jsonl, curves.png; with `keep_every`, kept/ and kept.json (kept.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..context import WorkContext
from ..nn.config import TrainConfig
from ..nn.gpt import GPT, save_checkpoint
from ..nn.sparsity import nonzero_fractions
from ..nn.training import Trainer
from ..shard_loader import ShardLoader
from .bigram_baseline import bigram_loss, train_bigram_log_probs
from .curves import plot_training_curves
from .kept import write_kept
from .loop import EvalResult, JobBuilder, RunLog, TrainingJob, evaluate, resolve_train_config, train_loop

__all__ = ["run_pretrain", "train_cell", "pretrain_job", "write_outputs"]


def prepare_run(
    ctx: WorkContext, train: TrainConfig, tokens_input: str
) -> tuple[Path, ShardLoader, TrainConfig, list[Tensor]]:
    """Threads, the token shards, the resolved config and the validation batches of a training cell."""
    torch.set_num_threads(ctx.num_threads)
    # Tiny Adam moments of long-unused weights become denormal floats, which slow CPU math ~5x.
    torch.set_flush_denormal(True)
    tokens_root = ctx.input(tokens_input)
    loader = ShardLoader(tokens_root, "train", train.batch_size, seed=train.seed)
    train = resolve_train_config(train, loader)
    device = torch.device(ctx.device)
    val_batches = [
        b.to(device) for b in ShardLoader(tokens_root, "val", train.batch_size).iter_eval(train.eval_batches)
    ]
    return tokens_root, loader, train, val_batches


def pretrain_job(train: TrainConfig, inputs: dict[str, Path], device: torch.device) -> TrainingJob:
    torch.manual_seed(train.seed)
    trainer = Trainer(GPT(train.model).to(device), train)
    return TrainingJob(trainer, lambda batches: evaluate(trainer.model, batches), None)


@dataclass
class TrainedCell:
    job: TrainingJob  # holding the trained state
    final: Any  # the last evaluation
    log: RunLog
    train: TrainConfig  # resolved (vocab_size filled in)
    tokens_root: Path
    val_batches: list[Tensor]


def train_cell(
    ctx: WorkContext, train: TrainConfig, build: JobBuilder, tokens_input: str, ray_train: bool | None = None
) -> TrainedCell:
    """Train the job `build` makes: in this process, or on ctx.workers Ray Train workers (parallel.py).
    `ray_train` None: Ray Train when ctx.workers > 1 (True: also for one worker, as `bench train` measures it)."""
    tokens_root, loader, train, val_batches = prepare_run(ctx, train, tokens_input)
    job = build(train, ctx.inputs, torch.device(ctx.device))
    use_ray_train = ctx.workers > 1 if ray_train is None else ray_train
    if use_ray_train:
        from .parallel import train_data_parallel

        state = train_data_parallel(ctx, train, build, tokens_input)
        job.trainer.load_state_dict(state["trainer"])
        log = RunLog(**state["log"])
        final = job.evaluate(val_batches)
        ctx.metrics["train_workers"] = state["world"]
    else:
        final, log = train_loop(ctx, train, job.trainer, loader, lambda: job.evaluate(val_batches), job.loss_fn)
    return TrainedCell(job, final, log, train, tokens_root, val_batches)


def run_pretrain(
    ctx: WorkContext, train: TrainConfig, tokens_input: str = "tokenize", ray_train: bool | None = None
) -> None:
    cell = train_cell(ctx, train, pretrain_job, tokens_input, ray_train)
    write_outputs(ctx, cell.train, cell.job.trainer.model, cell.final, cell.log, cell.tokens_root, cell.val_batches)


def write_outputs(
    ctx: WorkContext,
    train: TrainConfig,
    model: GPT,
    final: EvalResult,
    log: RunLog,
    tokens_root: Path,
    val_batches: list[Tensor],
) -> None:
    bigram_val_loss = bigram_loss(train_bigram_log_probs(tokens_root).to(val_batches[0].device), val_batches)
    out = Path(ctx.out_dir)
    save_checkpoint(model, out)
    (out / "train_config.json").write_text(train.model_dump_json(indent=2))
    write_kept(ctx, log.history, train)
    with open(out / "metrics.jsonl", "w") as handle:
        for row in log.history:
            handle.write(json.dumps(row) + "\n")
    plot_training_curves(log.history, bigram_val_loss, out / "curves.png")
    ctx.metrics.update(
        {
            "final_val_loss": final.loss,
            "bigram_val_loss": bigram_val_loss,
            "target_l0": train.sparsity.target_l0 if train.sparsity.enabled else 1.0,
            "l0_by_param": nonzero_fractions(model),
            "dead_neurons": final.dead_neurons,
            "tokens_seen": log.tokens_seen,
            "steps": train.steps,
            "train_seconds": log.train_seconds,
        }
    )
