"""Data-parallel training throughput (`sparsepipe bench train --workers 1,2`): Ray Train against one process.

Every configuration trains the step benchmark's sparse model (its shape, at TARGET_L0) from scratch, for
the same steps on the same global batches (split over the ranks), as a whole training cell:
run_pretrain, in this process (what a cell runs with `execution.train_workers: 1`) and
on N Ray Train workers (ray_train=True) of one thread (or one GPU) each. Ray Train with one worker is
always measured, as the baseline. The configurations take turns, round by round, so the machine's load
hits all alike.

Per run: tokens/s of the training loop (the run log's tokens_seen / train_seconds: rank 0's time in the
loop, all-reduce waits and the one final evaluation included, Ray Train's start-up not) and the cell's wall
time (start-up, data loading and writing the outputs included). The scaling efficiency of N workers is
tokens/s(N) / (N x tokens/s(1)), against Ray Train with one worker and against the in-process cell.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...kernels.device import pick_device
from ..benchmarking import BenchmarkOptionError, private_local_ray, usable_cpus
from ..context import WorkContext
from ..nn.config import ModelConfig, SparsityConfig, TrainConfig
from ..tokenize.shards import write_token_shards
from .bench import TARGET_L0, bench_shape, describe_device, in_rounds
from .worker import run_pretrain

IN_PROCESS = "in_process"
THREADS_PER_WORKER = 1
STEPS_PER_RUN = {False: 40, True: 8}  # by --quick; enough that a fresh worker's first steps do not dominate
ROUNDS = {False: 3, True: 2}


def data_parallel_worker_counts(requested: tuple[int, ...], quick: bool) -> tuple[int, ...]:
    """The Ray Train worker counts to measure (those requested, and 1), or BenchmarkOptionError when this
    machine cannot run one of them."""
    counts = tuple(sorted({1, *requested}))
    dev = torch.device(pick_device())
    _, batch_size, _ = bench_shape(dev, quick)
    most = counts[-1]
    if most * THREADS_PER_WORKER > usable_cpus():
        raise BenchmarkOptionError(
            f"--workers {most} needs {most * THREADS_PER_WORKER} CPUs ({THREADS_PER_WORKER} per worker), "
            f"but this machine has {usable_cpus()}"
        )
    if dev.type == "cuda" and most > torch.cuda.device_count():
        raise BenchmarkOptionError(
            f"--workers {most} needs {most} GPUs (one per worker), but this machine has {torch.cuda.device_count()}"
        )
    uneven = [n for n in counts if batch_size % n]
    if uneven:
        raise BenchmarkOptionError(
            f"the global batch of {batch_size} rows does not split evenly over {', '.join(map(str, uneven))} workers"
        )
    return counts


def bench_data_parallel(counts: tuple[int, ...], quick: bool) -> dict[str, Any]:
    """Training-loop tokens/s and cell wall time of each configuration per round, and the scaling efficiency.
    `counts` come from data_parallel_worker_counts."""
    dev = torch.device(pick_device())
    shape, batch_size, vocab = bench_shape(dev, quick)
    train = _train_config(shape, batch_size, vocab, STEPS_PER_RUN[quick])
    workers_by_config: dict[str, int | None] = {IN_PROCESS: None, **{f"ray_train_{n}": n for n in counts}}
    threads = torch.get_num_threads()  # run_pretrain sets this process's to THREADS_PER_WORKER
    try:
        with tempfile.TemporaryDirectory(prefix="sparsepipe-bench-dp-") as scratch, private_local_ray(usable_cpus()):
            tokens = _write_random_tokens(Path(scratch) / "tokens", train)
            runs = in_rounds(
                {
                    name: _cell_runner(tokens, train, workers, dev, Path(scratch) / name)
                    for name, workers in workers_by_config.items()
                },
                ROUNDS[quick],
            )
    finally:
        torch.set_num_threads(threads)
    configs = {name: _summary(workers, runs[name]) for name, workers in workers_by_config.items()}
    return {
        "device": describe_device(dev),
        "shape": {**shape, "global_batch_size": batch_size, "vocab_size": vocab, "target_l0": TARGET_L0},
        "steps_per_run": train.steps,
        "tokens_per_run": train.steps * batch_size * shape["n_ctx"],
        "rounds": ROUNDS[quick],
        "threads_per_worker": THREADS_PER_WORKER,
        "gpus_per_worker": _gpus_per_worker(dev),
        "configs": configs,
        "scaling_efficiency": scaling_efficiency(configs, "tokens_per_s_mean"),
        # From the fastest round of each configuration: the least disturbed by other load on a shared machine.
        "scaling_efficiency_best_round": scaling_efficiency(configs, "tokens_per_s_best"),
    }


def scaling_efficiency(configs: dict[str, dict[str, Any]], statistic: str) -> dict[str, dict[str, float]]:
    """tokens/s(N) / (N x tokens/s of the baseline) for every Ray Train configuration, keyed by N, per baseline."""
    baselines = {"vs_ray_train_1": configs["ray_train_1"][statistic], "vs_in_process": configs[IN_PROCESS][statistic]}
    return {
        label: {
            str(config["workers"]): config[statistic] / (config["workers"] * baseline)
            for config in configs.values()
            if config["ray_train"]
        }
        for label, baseline in baselines.items()
    }


def _train_config(shape: dict[str, int], batch_size: int, vocab: int, steps: int) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(**shape, vocab_size=vocab),
        sparsity=SparsityConfig(enabled=True, target_l0=TARGET_L0),
        batch_size=batch_size,
        steps=steps,
        eval_every=steps,  # one evaluation, at the end
        eval_batches=1,
        checkpoint_every=steps,
    )


def _write_random_tokens(root: Path, train: TrainConfig) -> Path:
    """Token shards of uniform random ids: one epoch of training rows (no row read twice) and one eval batch."""
    rng = np.random.default_rng(0)
    width, vocab = train.model.n_ctx + 1, train.model.vocab_size
    write_token_shards(rng.integers(0, vocab, (train.steps * train.batch_size, width)), root, "train", vocab)
    write_token_shards(rng.integers(0, vocab, (train.eval_batches * train.batch_size, width)), root, "val", vocab)
    return root


def _gpus_per_worker(dev: torch.device) -> float:
    return 1.0 if dev.type == "cuda" else 0.0


def _cell_runner(tokens: Path, train: TrainConfig, workers: int | None, dev: torch.device, folder: Path):
    """A function that trains one cell from scratch: in this process (workers None) or on Ray Train workers."""
    round_numbers = itertools.count()

    def run() -> dict[str, float]:
        out_dir = folder / f"round-{next(round_numbers)}"
        out_dir.mkdir(parents=True)
        # No progress area: no checkpoints, and Ray Train's rank 0 hands back its final state in a scratch folder.
        ctx = WorkContext(
            out_dir=out_dir,
            inputs={"tokenize": tokens},
            num_threads=THREADS_PER_WORKER,
            device=dev.type,
            workers=workers or 1,
            gpus_per_worker=_gpus_per_worker(dev) if workers else 0.0,
        )
        started = time.perf_counter()
        run_pretrain(ctx, train, ray_train=workers is not None)
        wall = time.perf_counter() - started
        tokens_seen, train_seconds = ctx.metrics["tokens_seen"], ctx.metrics["train_seconds"]
        return {
            "tokens_seen": tokens_seen,
            "train_seconds": train_seconds,
            "tokens_per_s": tokens_seen / train_seconds,
            "wall_s": wall,
        }

    return run


def _summary(workers: int | None, runs: list[dict[str, float]]) -> dict[str, Any]:
    tokens_per_s, walls = [run["tokens_per_s"] for run in runs], [run["wall_s"] for run in runs]
    return {
        "workers": workers or 1,
        "ray_train": workers is not None,
        "runs": runs,
        "tokens_per_s_mean": statistics.mean(tokens_per_s),
        "tokens_per_s_best": max(tokens_per_s),
        "wall_s_mean": statistics.mean(walls),
        "wall_s_best": min(walls),
    }
