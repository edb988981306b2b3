"""One optimizer step of (weight-sparse) language-model training, shared by every trainer.

Step order (paper §2.1, Appendix A.2): forward, cross-entropy, backward, limit
the global gradient RMS, AdamW, then weight top-k to the scheduled L0.
With sparsity off the same step trains the dense baseline.

Gradient accumulation (`train.microbatches` = k): the forward and backward run on
k equal row chunks of the batch in turn, each chunk's mean loss divided by k, so
the summed gradients are the whole batch's mean loss's and the rest of the step
is unchanged; the activations held at once are a chunk's, not the batch's.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import OptimConfig, TrainConfig
from .gpt import GPT
from .sparsity import L0Schedule, WeightSparsifier, learning_rate


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; nothing was updated at `step`."""

    def __init__(self, step: int, reason: str, last_checkpoint: str | None = None):
        self.step, self.reason, self.last_checkpoint = step, reason, last_checkpoint
        where = (
            f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was saved before it"
        )
        super().__init__(f"training diverged at step {step}: {reason}; {where}. Lower optim.lr or check the data.")


@dataclass
class StepStats:
    loss: float
    lr: float
    l0: float  # weight L0 after this step's top-k
    grad_rms: float  # before clipping


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of logits [B, T, vocab] against targets [B, T], computed in float32."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def uses_bf16(precision: str, device_type: str) -> bool:
    """Whether `train.precision` trains under bf16 autocast on this device type ("auto": on CUDA only)."""
    return precision == "bf16" or (precision == "auto" and device_type == "cuda")


def precision_context(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The forward's context: bf16 autocast (weights, optimizer state and top-k stay fp32) or nothing."""
    if uses_bf16(precision, device_type):
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lm_loss(model: GPT, batch: Tensor) -> Tensor:
    """Mean next-token loss of rows [B, n_ctx + 1]."""
    logits, _ = model(batch[:, :-1])
    return next_token_loss(logits, batch[:, 1:])


def build_optimizer(model: GPT, optim: OptimConfig, extra: nn.Module | None = None) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings only (not biases, norms, sinks, bigram table).
    With weight_decay_mode "after_topk" AdamW decays nothing and `Trainer` decays after the top-k.
    `extra` modules: their 2-D weights are decayed, the rest not."""
    roles = model.parameter_roles()
    decayed = [p for n, p in model.named_parameters() if roles[n].kind in ("matrix", "embed")]
    other = [p for n, p in model.named_parameters() if roles[n].kind not in ("matrix", "embed")]
    if extra is not None:
        decayed += [p for p in extra.parameters() if p.dim() >= 2]
        other += [p for p in extra.parameters() if p.dim() < 2]
    decay = optim.weight_decay if optim.weight_decay_mode == "adamw" else 0.0
    groups = [{"params": decayed, "weight_decay": decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps)


def limit_grad_rms(params: list[torch.nn.Parameter], optim: OptimConfig) -> float:
    """Global RMS of the gradients, before scaling them to at most (clip) or exactly (normalize) grad_clip_rms."""
    grads = [p.grad for p in params if p.grad is not None]
    numel = sum(g.numel() for g in grads)
    rms = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) / math.sqrt(numel)
    rms_value = rms.item()
    if optim.grad_clip_rms is not None and math.isfinite(rms_value) and rms_value > 0:
        scale = optim.grad_clip_rms / rms_value
        if optim.grad_rms_mode == "normalize" or scale < 1.0:
            for g in grads:
                g.mul_(scale)
    return rms_value


class Trainer:
    """Model, optimizer, sparsifier and step counter of one training run.

    `extra`: modules trained jointly with the model (e.g. bridges): in the optimizer (matrices
    decayed like the model's) and in the gradient-RMS limit, never weight-sparsified.
    """

    def __init__(self, model: GPT, train: TrainConfig, extra: nn.Module | None = None):
        self.model, self.train, self.extra = model, train, extra
        self.schedule = L0Schedule(train.sparsity, train.steps) if train.sparsity.enabled else None
        self.sparsifier = WeightSparsifier(model, self.schedule) if self.schedule else None
        self.optimizer = build_optimizer(model, train.optim, extra)
        self.params = [p for p in self.optimizer_params() if p.requires_grad]
        self.decayed_after_topk = (
            self.optimizer.param_groups[0]["params"] if train.optim.weight_decay_mode == "after_topk" else []
        )
        self.step = 0  # completed optimizer steps
        # Data-parallel training sets this: average the gradients across ranks before they are used, given
        # whether this rank's loss is finite; returns how many ranks' losses were not (every rank agrees on it).
        self.sync_gradients: Callable[[list[nn.Parameter], bool], int] | None = None
        # A loss normalised by the whole step batch (bridges' NMSE) sets this: called with the step's batch and
        # the number of microbatches, under the step's autocast, before the first microbatch's forward.
        self.begin_step: Callable[[Tensor, int], None] | None = None
        self.autocast = precision_context(train.precision, next(model.parameters()).device.type)

    def weight_l0(self) -> float:
        return self.schedule.weight_l0(self.step) if self.schedule else 1.0

    def optimizer_params(self) -> list[nn.Parameter]:
        return [*self.model.parameters(), *(self.extra.parameters() if self.extra is not None else [])]

    def accumulate_gradients(self, batch: Tensor, loss_fn: Callable[[Tensor], Tensor]) -> float:
        """Forward and backward of `batch` as `train.microbatches` equal chunks of rows, each chunk's loss divided
        by their number: the gradients summed are the whole batch's mean loss's, which is returned. A chunk whose
        loss is not finite ends the accumulation without its backward, and its loss is returned."""
        count = self.train.microbatches
        if batch.shape[0] % count:
            raise ValueError(
                f"a batch of {batch.shape[0]} rows does not split into train.microbatches={count} equal microbatches"
            )
        if self.begin_step is not None:
            with self.autocast:
                self.begin_step(batch, count)
        total = 0.0
        for chunk in batch.chunk(count):
            with self.autocast:
                loss = loss_fn(chunk)
            value = loss.item()
            if not math.isfinite(value):
                return value
            (loss / count).backward()
            total += value
        return total / count

    def train_step(self, batch: Tensor, loss_fn: Callable[[Tensor], Tensor] | None = None) -> StepStats:
        """One step on `batch`; `loss_fn(rows)` replaces the next-token loss of the model (a mean over `rows`)."""
        l0 = self.weight_l0()
        lr = learning_rate(self.step, self.train.steps, self.train.optim, l0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_value = self.accumulate_gradients(batch, loss_fn or partial(lm_loss, self.model))
        finite = math.isfinite(loss_value)
        if self.sync_gradients is None and not finite:
            raise TrainingDiverged(self.step + 1, f"the training loss is {loss_value}")
        if self.sync_gradients is not None:
            # Every rank joins the all-reduce even when its own loss is NaN, so all ranks stop together.
            diverged_ranks = self.sync_gradients(self.params, finite)
            if diverged_ranks:
                raise TrainingDiverged(
                    self.step + 1,
                    f"the training loss is not finite on {diverged_ranks} data-parallel rank(s) "
                    f"(this rank's: {loss_value})",
                )
        grad_rms = limit_grad_rms(self.params, self.train.optim)
        if not math.isfinite(grad_rms):
            raise TrainingDiverged(self.step + 1, f"the gradient RMS is {grad_rms}")
        self.optimizer.step()
        self.step += 1
        if self.sparsifier is not None:
            self.sparsifier.apply(self.step)
        if self.decayed_after_topk:
            with torch.no_grad():
                for p in self.decayed_after_topk:
                    p.mul_(1 - lr * self.train.optim.weight_decay)
        return StepStats(loss=loss_value, lr=lr, l0=self.weight_l0(), grad_rms=grad_rms)

    def state_dict(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step}
        if self.extra is not None:
            state["extra"] = self.extra.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.extra is not None:
            self.extra.load_state_dict(state["extra"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
