"""What weight sparsity costs per training step: sparse vs dense on one model shape.

Sparse: weight top-k (with the min-alive rule) after every step at the target
L0, AbsTopK at all eight node locations. Dense: the same model and step with
sparsity and AbsTopK off. Both run on identical random batches, interleaved
round by round so that machine noise hits both alike.

    python -m sparsepipe.workers.train.bench [--quick] [--device cpu|cuda|auto] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable, TypeVar

import torch

from ...kernels.device import device_name, pick_device
from ..nn.config import ModelConfig, SparsityConfig, TrainConfig
from ..nn.gpt import GPT
from ..nn.training import Trainer

# (model, batch size, vocab): the tiny preset's shape on the CPU, the small preset's on a GPU.
SHAPES: dict[str, tuple[dict[str, int], int, int]] = {
    "cpu": ({"n_layer": 2, "d_model": 128, "n_head": 8, "d_head": 16, "n_ctx": 128}, 32, 2048),
    "cpu-quick": ({"n_layer": 1, "d_model": 64, "n_head": 4, "d_head": 16, "n_ctx": 32}, 4, 256),
    "cuda": ({"n_layer": 4, "d_model": 512, "n_head": 32, "d_head": 16, "n_ctx": 256}, 64, 2048),
    "cuda-quick": ({"n_layer": 2, "d_model": 256, "n_head": 16, "d_head": 16, "n_ctx": 128}, 16, 2048),
}
TARGET_L0 = 1 / 16

T = TypeVar("T")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def in_rounds(runs: dict[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Every named run once per round, in turn, so that machine noise hits all of them alike; results per round."""
    results: dict[str, list[T]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    return results


def time_interleaved(
    steps: dict[str, Callable[[torch.Tensor], Any]], batches: torch.Tensor, warmup: int, rounds: int, dev: torch.device
) -> dict[str, list[float]]:
    """Seconds per step of each named step function, per round; rounds interleave the steps on the same batches,
    so every ratio is measured side by side under the same load."""
    for step in steps.values():
        for i in range(warmup):
            step(batches[i % len(batches)])

    def seconds_per_step(step: Callable[[torch.Tensor], Any]) -> Callable[[], float]:
        def run() -> float:
            _synchronize(dev)
            started = time.perf_counter()
            for batch in batches:
                step(batch)
            _synchronize(dev)
            return (time.perf_counter() - started) / len(batches)

        return run

    return in_rounds({name: seconds_per_step(step) for name, step in steps.items()}, rounds)


def bench_trainer(model: ModelConfig, sparse: bool, batch_size: int, steps: int, device: torch.device) -> Trainer:
    train = TrainConfig(
        model=model if sparse else model.model_copy(update={"afrac": None}),
        sparsity=SparsityConfig(enabled=sparse, target_l0=TARGET_L0),
        batch_size=batch_size,
        steps=steps,
    )
    torch.manual_seed(0)
    trainer = Trainer(GPT(train.model).to(device), train)
    trainer.step = steps // 2  # past the anneal (anneal_end_frac 0.5): every step keeps the target L0
    return trainer


def bench_shape(dev: torch.device, quick: bool) -> tuple[dict[str, int], int, int]:
    """(model shape, batch size, vocab) of the training benchmarks on this device."""
    return SHAPES[dev.type + ("-quick" if quick else "")]


def describe_device(dev: torch.device) -> str:
    return device_name(dev) if dev.type == "cuda" else f"cpu ({device_name(dev)})"


def bench_step_times(device: str = "auto", quick: bool = False) -> dict[str, Any]:
    """Mean seconds per training step, sparse vs dense, on the same model shape and batches."""
    if device == "auto":
        device = pick_device()
    dev = torch.device(device)
    torch.set_flush_denormal(True)  # as run_pretrain does
    shape, batch_size, vocab = bench_shape(dev, quick)
    model = ModelConfig(**shape, vocab_size=vocab)
    warmup, rounds, steps_per_round = (2, 3, 2) if quick else (3, 10, 3)
    total = 2 * (warmup + rounds * steps_per_round) + 2
    trainers = {
        "sparse": bench_trainer(model, True, batch_size, total, dev),
        "dense": bench_trainer(model, False, batch_size, total, dev),
    }
    batches = torch.randint(
        0, vocab, (steps_per_round, batch_size, model.n_ctx + 1), generator=torch.Generator().manual_seed(0)
    ).to(dev)

    times = time_interleaved(
        {name: trainer.train_step for name, trainer in trainers.items()}, batches, warmup, rounds, dev
    )

    sparse_s, dense_s = statistics.mean(times["sparse"]), statistics.mean(times["dense"])
    return {
        "sparse_step_s": sparse_s,
        "dense_step_s": dense_s,
        "sparse_over_dense": sparse_s / dense_s,
        # The ratio of the fastest rounds: least disturbed by other load on a shared machine.
        "sparse_over_dense_best_round": min(times["sparse"]) / min(times["dense"]),
        "device": describe_device(dev),
        "threads": torch.get_num_threads(),
        "shape": {**shape, "batch_size": batch_size, "vocab_size": vocab, "target_l0": TARGET_L0, "afrac": model.afrac},
        "steps_timed": rounds * steps_per_round,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(bench_step_times(args.device, args.quick), indent=2))


if __name__ == "__main__":
    main()


def measure(quick: bool, workers: tuple[int, ...] | None = None) -> dict[str, Any]:
    """`sparsepipe bench train`: the kernels against torch.topk, and sparse against dense training steps;
    with `workers`, also data-parallel training throughput on that many Ray Train workers (see bench_parallel)."""
    from ...kernels.bench import bench_kernels
    from .bench_parallel import bench_data_parallel, data_parallel_worker_counts

    counts = data_parallel_worker_counts(workers, quick) if workers is not None else None  # before measuring
    result = {"kernels": bench_kernels(quick=quick), "steps": bench_step_times(quick=quick)}
    if counts is not None:
        result["data_parallel"] = bench_data_parallel(counts, quick)
    return result
