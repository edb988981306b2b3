"""The training loop every training cell runs: resume, steps, evaluations, checkpoints, progress.

A cell's trained things come as a TrainingJob (trainer, loss, validation), which a JobBuilder makes;
`train_loop` runs it in this process, and parallel.py runs the same loop on every Ray Train rank.
At every evaluation whose step is a multiple of `keep_every` the model's weights are kept (kept.py).
Every `checkpoint_every` steps the whole training state (model, optimizer, step, loader position,
RNG states, metric history) goes into the cell's progress area as one file; a restarted cell resumes
from it and ends with exactly the weights of an uninterrupted run (on the CPU).
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from ..context import WorkContext
from ..nn.config import TrainConfig
from ..nn.gpt import GPT
from ..nn.training import StepStats, Trainer, TrainingDiverged, next_token_loss
from ..shard_loader import ShardLoader
from .kept import keep_checkpoint, keep_now

__all__ = ["train_loop", "TrainingJob", "JobBuilder", "TrainingDiverged", "CHECKPOINT"]

CHECKPOINT = "train_state.pt"  # name in the progress area


def resolve_train_config(train: TrainConfig, loader: ShardLoader) -> TrainConfig:
    """Fill vocab_size from the shards and check that n_ctx matches them."""
    model = train.model
    if model.n_ctx != loader.n_ctx:
        raise ValueError(
            f"model.n_ctx={model.n_ctx} but the token shards hold rows of n_ctx={loader.n_ctx}; "
            f"set the training config's model.n_ctx to the tokenize stage's n_ctx ({loader.n_ctx})"
        )
    if model.vocab_size is None:
        return train.model_copy(update={"model": model.model_copy(update={"vocab_size": loader.vocab_size})})
    if model.vocab_size < loader.vocab_size:
        raise ValueError(f"model.vocab_size={model.vocab_size} is smaller than the tokenizer's {loader.vocab_size}")
    return train


@dataclass
class EvalResult:
    loss: float
    dead_neurons: int  # MLP neurons whose post_act is never > 0 on the eval batches

    def history_fields(self) -> dict[str, Any]:
        """Columns this evaluation adds to its metrics.jsonl row besides val_loss."""
        return {}


@torch.no_grad()
def evaluate(model: GPT, batches: Iterable[Tensor]) -> EvalResult:
    model.eval()
    neuron_hooks = [f"{layer}.mlp.post_act" for layer in range(model.config.n_layer)]
    active = torch.zeros(
        len(neuron_hooks), model.config.mlp_width, dtype=torch.bool, device=next(model.parameters()).device
    )
    total, tokens = 0.0, 0
    for batch in batches:
        logits, recorded = model(batch[:, :-1], record=neuron_hooks)
        total += next_token_loss(logits, batch[:, 1:]).item() * batch[:, 1:].numel()
        tokens += batch[:, 1:].numel()
        for i, name in enumerate(neuron_hooks):
            active[i] |= (recorded[name] > 0).flatten(0, 1).any(dim=0)
    return EvalResult(loss=total / tokens, dead_neurons=int((~active).sum().item()))


@dataclass
class RunLog:
    """What a run accumulates besides the trainer's state; saved in every checkpoint."""

    history: list[dict[str, Any]] = field(default_factory=list)  # the rows of metrics.jsonl
    tokens_seen: int = 0
    train_seconds: float = 0.0
    window_loss: float = 0.0  # sum of train losses since the last history row
    window_steps: int = 0

    def add(
        self,
        step: int,
        stats: StepStats,
        tokens: int,
        write_row: bool,
        val_loss: float | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.tokens_seen += tokens
        self.window_loss += stats.loss
        self.window_steps += 1
        if write_row:
            self.history.append(
                {
                    "step": step,
                    "lr": stats.lr,
                    "l0": stats.l0,
                    "train_loss": self.window_loss / self.window_steps,
                    "val_loss": val_loss,
                    "tokens_seen": self.tokens_seen,
                    "grad_rms": stats.grad_rms,
                    **(extra or {}),
                }
            )
            self.window_loss, self.window_steps = 0.0, 0


# History columns sent to TensorBoard and the trackers (pipeline/tracking.py), by tag.
TRACKED = {
    "train_loss": "train/loss",
    "val_loss": "val/loss",
    "lr": "train/lr",
    "l0": "train/l0",
    "grad_rms": "train/grad_rms",
}


def tracked_scalars(row: dict[str, Any]) -> dict[str, float]:
    """One metrics.jsonl row as tracker scalars (val/loss only on evaluation rows)."""
    return {tag: float(row[name]) for name, tag in TRACKED.items() if row.get(name) is not None}


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(ctx: WorkContext, train: TrainConfig, trainer: Trainer, loader: ShardLoader, log: RunLog) -> None:
    state = {
        "train_config": train.model_dump(mode="json"),
        "trainer": trainer.state_dict(),
        "loader": loader.state_dict(),
        "rng": _rng_state(),
        "log": log.__dict__,
    }
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / CHECKPOINT
        torch.save(state, path)
        ctx.progress.put(CHECKPOINT, path)


def load_train_state(ctx: WorkContext, train: TrainConfig, trainer: Trainer, loader: ShardLoader) -> RunLog | None:
    """Restore the latest checkpoint of this cell, if any; returns its RunLog."""
    if ctx.progress is None:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / CHECKPOINT
        if not ctx.progress.get(CHECKPOINT, path):
            return None
        state = torch.load(path, map_location=next(trainer.model.parameters()).device, weights_only=True)
    if state["train_config"] != train.model_dump(mode="json"):
        raise ValueError(
            f"the checkpoint {CHECKPOINT!r} in this cell's progress was saved with a different training config"
        )
    trainer.load_state_dict(state["trainer"])
    loader.load_state_dict(state["loader"])
    _set_rng_state(state["rng"])
    return RunLog(**state["log"])


def checkpoint_label(step: int) -> str:
    return f"step {step} ({CHECKPOINT!r} in this cell's progress)"


@dataclass
class TrainingJob:
    """What one training cell trains: the trainer, its loss (None: next-token) and its validation.

    A JobBuilder makes one from the resolved config, the cell's local input folders and the device; a
    data-parallel cell calls the same builder on every rank (so every rank starts from the same weights).
    """

    trainer: Trainer
    evaluate: Callable[[list[Tensor]], Any]  # val batches -> an EvalResult-like (.loss, .history_fields())
    loss_fn: Callable[[Tensor], Tensor] | None

    def join_ranks(self, world: int, all_sum: Callable[[Tensor], Tensor]) -> None:
        """Called on every rank of a data-parallel cell before training: a loss whose normalisation depends on
        the whole batch (not a mean of per-row terms) reduces it with `all_sum` here. The next-token loss does not."""


JobBuilder = Callable[[TrainConfig, dict[str, Path], torch.device], TrainingJob]


def train_loop(
    ctx: WorkContext,
    train: TrainConfig,
    trainer: Trainer,
    loader: ShardLoader,
    evaluate_now: Callable[[], Any],
    loss_fn: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Any, RunLog]:
    """Resume from this cell's checkpoint, train to `train.steps`, checkpoint and report progress.

    `evaluate_now()` runs every `eval_every` steps and at the end; its result has `.loss` (the
    history's val_loss) and `history_fields()`, more columns for that row (see EvalResult).
    `loss_fn(batch)` replaces the next-token loss (see `Trainer.train_step`).
    Returns the last evaluation and the run log.
    """
    device = next(trainer.model.parameters()).device
    log = load_train_state(ctx, train, trainer, loader) or RunLog()
    last_checkpoint = checkpoint_label(trainer.step) if trainer.step else None

    resumed = {"note": f"resumed at step {trainer.step}"} if trainer.step else {}
    ctx.report(
        {
            "completed": trainer.step,
            "total": train.steps,
            "description": f"resumed at step {trainer.step}" if trainer.step else "starting",
            **resumed,
        }
    )
    log_every = max(1, train.steps // 1000)
    report_every = max(1, train.steps // 100)
    final_eval = None
    while trainer.step < train.steps:
        started = time.perf_counter()
        batch = loader.next_batch().to(device)
        try:
            stats = trainer.train_step(batch, loss_fn)
        except TrainingDiverged as error:
            raise TrainingDiverged(error.step, error.reason, last_checkpoint) from None
        step = trainer.step
        evaluation = evaluate_now() if step % train.eval_every == 0 or step == train.steps else None
        val_loss = evaluation.loss if evaluation else None
        if evaluation is not None and keep_now(train, step):
            keep_checkpoint(ctx, trainer.model, step)
        write_row = evaluation is not None or step % log_every == 0
        log.add(
            step,
            stats,
            batch[:, 1:].numel(),
            write_row=write_row,
            val_loss=val_loss,
            extra=evaluation.history_fields() if evaluation is not None else None,
        )
        log.train_seconds += time.perf_counter() - started
        if ctx.progress is not None and step % train.checkpoint_every == 0 and step < train.steps:
            if not all(torch.isfinite(p).all() for p in trainer.optimizer_params()):
                raise TrainingDiverged(step, "a weight became NaN/inf", last_checkpoint)
            save_train_state(ctx, train, trainer, loader, log)
            last_checkpoint = checkpoint_label(step)
        if write_row or step % report_every == 0 or step == train.steps:
            event = {"completed": step, "total": train.steps, "description": f"loss {stats.loss:.3f}"}
            ctx.report({**event, "scalars": tracked_scalars(log.history[-1])} if write_row else event)
        final_eval = evaluation
    return final_eval, log
