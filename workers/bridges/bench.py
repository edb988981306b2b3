"""What bridges cost per training step: a bridges step over a sparse pretrain step on the same shapes.

Both train the same sparse model shape (train/bench.py's shapes, weight top-k at the
target L0, AbsTopK everywhere) on identical random batches, interleaved round by
round. The bridges step also runs the frozen dense model (the same shape without
AbsTopK), 2 * n_layer + 1 encoder/decoder pairs, the NMSE terms and one hybrid
pass per location and direction.

    python -m sparsepipe.workers.bridges.bench [--quick] [--device cpu|cuda|auto]
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any, Callable

import torch

from ...kernels.device import device_name, pick_device
from ..nn.config import ModelConfig
from ..nn.gpt import GPT
from ..nn.training import Trainer
from ..train.bench import SHAPES, TARGET_L0, bench_trainer, time_interleaved
from .bridges import BridgeObjective, Bridges
from .config import BridgesConfig


def bench_bridges_step(device: str = "auto", quick: bool = False) -> dict[str, Any]:
    if device == "auto":
        device = pick_device()
    dev = torch.device(device)
    torch.set_flush_denormal(True)
    shape, batch_size, vocab = SHAPES[dev.type + ("-quick" if quick else "")]
    model = ModelConfig(**shape, vocab_size=vocab)
    warmup, rounds, steps_per_round = (1, 3, 2) if quick else (2, 6, 2)
    total = 2 * (warmup + rounds * steps_per_round) + 2

    sparse = bench_trainer(model, True, batch_size, total, dev)  # past the L0 anneal, as train/bench.py measures
    torch.manual_seed(1)
    dense = GPT(model.model_copy(update={"afrac": None})).to(dev)
    torch.manual_seed(0)
    bridged = GPT(model).to(dev)
    bridges = Bridges(dense.config, bridged.config, BridgesConfig().encoder_afrac).to(dev)
    objective = BridgeObjective(dense, bridged, bridges, BridgesConfig())
    with_bridges = Trainer(bridged, sparse.train, extra=bridges)
    with_bridges.step = sparse.step
    steps: dict[str, Callable[[torch.Tensor], Any]] = {
        "sparse": sparse.train_step,
        "bridges": lambda batch: with_bridges.train_step(batch, objective.loss),
    }
    batches = torch.randint(
        0, vocab, (steps_per_round, batch_size, model.n_ctx + 1), generator=torch.Generator().manual_seed(0)
    ).to(dev)
    times = time_interleaved(steps, batches, warmup, rounds, dev)
    bridges_s, sparse_s = statistics.mean(times["bridges"]), statistics.mean(times["sparse"])
    return {
        "bridges_step_s": bridges_s,
        "sparse_step_s": sparse_s,
        "bridges_over_sparse": bridges_s / sparse_s,
        "bridges_over_sparse_best_round": min(times["bridges"]) / min(times["sparse"]),
        "locations": len(bridges.locations),
        "device": device_name(dev) if dev.type == "cuda" else f"cpu ({device_name(dev)})",
        "threads": torch.get_num_threads(),
        "shape": {**shape, "batch_size": batch_size, "vocab_size": vocab, "target_l0": TARGET_L0, "afrac": model.afrac},
        "steps_timed": rounds * steps_per_round,
    }


def measure(quick: bool) -> dict[str, Any]:
    """`sparsepipe bench bridges`: a bridges step over a sparse pretrain step on the same shapes."""
    return bench_bridges_step(quick=quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(bench_bridges_step(args.device, args.quick), indent=2))


if __name__ == "__main__":
    main()
