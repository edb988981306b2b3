"""Data-parallel training cells on Ray Train (TorchTrainer: gloo on the CPU, NCCL on GPUs).

Every rank builds the same job (loop.JobBuilder: the model, or for bridges the sparse model, the
bridges and the frozen dense model) from the same seed, reads its own rows of each
global batch (rank r takes rows [r*b, (r+1)*b) of the batch a single process
would read, so N workers see exactly the one-worker data), and after backward
the gradients are averaged across ranks (one all-reduce of a flat buffer); with
`train.microbatches` a rank first accumulates its rows' microbatches, so the
all-reduce stays one per step.
The optimizer step and then the weight top-k run on identical values on every
rank, so weights and masks stay bitwise identical without a broadcast; the
final state records each rank's weight digest to prove it.

Checkpoints go through the cell's progress area exactly as a one-process cell's
do (train_loop's save/load): every rank takes part in saving (the loader state
is the global position, the same on every rank) and rank 0 writes it.  A worker
that dies makes Ray Train restart the group (FailureConfig); the restarted ranks
resume from the last checkpoint.  A killed driver resumes the same way.

What a rank logs: train_loss is rank 0's share of the batch (val_loss, on the
whole validation set, is exact); tokens_seen counts every rank's tokens.

As one process: a parameter no rank computed a gradient for keeps none (the
optimizer skips it); a loss normalised by the whole batch (bridges' NMSE)
reduces its normaliser across ranks (`TrainingJob.join_ranks`); a NaN loss on
any rank stops every rank at the same step (the flags ride in the gradient
all-reduce), and the cell fails with the NaN named instead of Ray Train
restarting the group into it.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ..context import WorkContext
from ..nn.config import TrainConfig
from ..nn.training import Trainer, TrainingDiverged
from ..shard_loader import ShardLoader
from .loop import JobBuilder

FINAL = "data_parallel_final.pt"  # the trained state rank 0 leaves in the progress area


class RankSlice:
    """A ShardLoader's global batches, cut to one rank's rows. The saved state is the global position."""

    def __init__(self, loader: ShardLoader, rank: int, world: int):
        if loader.batch_size % world:
            raise ValueError(f"batch_size {loader.batch_size} does not split evenly over {world} training workers")
        self.loader, self.rank, self.per_rank = loader, rank, loader.batch_size // world

    def next_batch(self) -> torch.Tensor:
        return self.loader.next_batch()[self.rank * self.per_rank : (self.rank + 1) * self.per_rank]

    def state_dict(self) -> dict[str, int]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.loader.load_state_dict(state)


class _Silent:
    """The progress area as ranks other than 0 see it: they read checkpoints, rank 0 alone writes."""

    def __init__(self, area: Any):
        self.area = area

    def put(self, name: str, local_file: Path) -> None:
        pass

    def get(self, name: str, local_file: Path) -> bool:
        return self.area.get(name, local_file)


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of `tensor` over every rank (in place, returned)."""
    import torch.distributed as dist

    dist.all_reduce(tensor)
    return tensor


def average_gradients(params: list[torch.nn.Parameter], world: int, loss_finite: bool) -> int:
    """Average the gradients across ranks in one all-reduce, as one process would have summed them; returns how
    many ranks' losses were not finite.

    A parameter without a gradient on every rank keeps none (AdamW then skips it, as in one process: a zero
    gradient would let weight decay and the moments move it); one with a gradient on some ranks takes zero from
    the others. The loss flags ride in the same buffer, so a NaN on one rank stops every rank at the same step.
    """
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    has_grad = torch.tensor([float(p.grad is not None) for p in params], device=grads[0].device if grads else None)
    diverged = torch.tensor([0.0 if loss_finite else 1.0], device=has_grad.device)
    flat = all_sum(torch.cat([*(g.reshape(-1).float() for g in grads), has_grad, diverged]))
    offset = 0
    for p, g, ranks_with_grad in zip(params, grads, flat[-len(params) - 1 : -1].tolist()):
        part = flat[offset : offset + g.numel()]
        p.grad = None if ranks_with_grad == 0 else (part / world).view_as(g).to(g.dtype).clone()
        offset += g.numel()
    return int(flat[-1].item())


def trained_digest(trainer: Trainer) -> str:
    """A digest of every trained weight: the model's and the extra modules' (bridges)."""
    digest = hashlib.sha256()
    modules = [("model", trainer.model)] + ([("extra", trainer.extra)] if trainer.extra is not None else [])
    for prefix, module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{prefix}.{name}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _rank_loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    from .loop import EvalResult, resolve_train_config, train_loop

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config["threads"])
    torch.set_flush_denormal(True)
    inputs = {name: handle.local_path() for name, handle in config["inputs"].items()}  # fetched on this node
    tokens_root = inputs[config["tokens_input"]]
    train = TrainConfig.model_validate(config["train"])
    loader = RankSlice(ShardLoader(tokens_root, "train", train.batch_size, seed=train.seed), rank, world)
    train = resolve_train_config(train, loader.loader)
    device = ray.train.torch.get_device()
    job = config["build"](train, inputs, device)
    job.trainer.sync_gradients = lambda params, loss_finite: average_gradients(params, world, loss_finite)
    job.join_ranks(world, all_sum)
    progress = config["progress"]
    ctx = SimpleNamespace(
        progress=progress if rank == 0 or progress is None else _Silent(progress),
        report=config["report"] if rank == 0 else (lambda event: None),
    )
    if rank == 0:
        val = [b.to(device) for b in ShardLoader(tokens_root, "val", train.batch_size).iter_eval(train.eval_batches)]
        evaluate_now = lambda: job.evaluate(val)  # noqa: E731
    else:
        evaluate_now = lambda: EvalResult(float("nan"), 0)  # noqa: E731
    try:
        _, log = train_loop(ctx, train, job.trainer, loader, evaluate_now, job.loss_fn)
    except TrainingDiverged as error:
        # Every rank diverges at the same step (the ranks agree on it in the gradient all-reduce). Ending normally
        # with the error in the final state keeps Ray Train from restarting the group into the same NaN.
        if rank == 0:
            diverged = {"step": error.step, "reason": error.reason, "last_checkpoint": error.last_checkpoint}
            _leave_final(config["final"], {"diverged": diverged, "world": world})
        return
    digests: list[str] = [""] * world
    dist.all_gather_object(digests, trained_digest(job.trainer))
    if rank == 0:
        log.tokens_seen *= world
        state = {"trainer": job.trainer.state_dict(), "log": log.__dict__, "rank_digests": digests, "world": world}
        _leave_final(config["final"], state)


def _leave_final(box: Any, state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        torch.save(state, Path(scratch) / FINAL)
        box.put(FINAL, Path(scratch) / FINAL)


class _FinalBox:
    """Where rank 0 leaves the final state when the cell has no progress area (outside the pipeline)."""

    def __init__(self, folder: str):
        self.folder = folder

    def put(self, name: str, local_file: Path) -> None:
        Path(self.folder, name).write_bytes(Path(local_file).read_bytes())


def train_data_parallel(
    ctx: WorkContext, train: TrainConfig, build: JobBuilder, tokens_input: str, max_failures: int = 2
) -> dict[str, Any]:
    """Train build's job on ctx.workers Ray Train workers; returns rank 0's final state (trainer, log,
    rank_digests, world). Every rank fetches the cell's inputs on its own node (ctx.handle)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    per_worker = {"CPU": float(ctx.num_threads)}
    if ctx.gpus_per_worker > 0:
        per_worker["GPU"] = ctx.gpus_per_worker
    with tempfile.TemporaryDirectory(prefix="sparsepipe-train-") as scratch:
        config = {
            "train": train.model_dump(mode="json"),
            "build": build,
            "inputs": {name: ctx.handle(name) for name in ctx.inputs},
            "tokens_input": tokens_input,
            "progress": ctx.progress,
            "report": ctx.report,
            "threads": ctx.num_threads,
            "final": ctx.progress if ctx.progress is not None else _FinalBox(scratch),
        }
        trainer = TorchTrainer(
            _rank_loop,
            train_loop_config=config,
            scaling_config=ScalingConfig(
                num_workers=ctx.workers, use_gpu=ctx.gpus_per_worker > 0, resources_per_worker=per_worker
            ),
            run_config=RunConfig(
                name="train",
                storage_path=str(Path(scratch) / "ray-train"),
                failure_config=FailureConfig(max_failures=max_failures),
            ),
        )
        trainer.fit()
        final = Path(scratch) / FINAL
        if ctx.progress is not None and not ctx.progress.get(FINAL, final):
            raise RuntimeError(f"the training workers finished without leaving {FINAL!r} in the progress area")
        state = torch.load(final, map_location="cpu", weights_only=True)
        if "diverged" in state:
            raise TrainingDiverged(**state["diverged"])
        return state
