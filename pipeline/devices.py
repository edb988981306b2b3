"""The devices `sparsepipe plan --estimate --device NAME` knows: peak FLOP/s, memory bandwidth, memory.

Peaks are the vendors' dense figures (no 2:4 sparsity; fp32 without TF32, torch's default for matmuls).
`efficiency` is the fraction of the peak this project's training step reaches: on the CPU it is measured
(see CPU_EFFICIENCY), on GPUs it is an assumption until infra/gpu_check.sh has measured one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# One core of the VM every figure so far was measured on (AMD EPYC, AVX-512 at ~3 GHz: 2 x 16 fp32
# FMAs per cycle), which is what a cell with num_cpus=1 gets. CPU estimates count fp32 (precision auto).
CPU_CORE_PEAK_FLOPS = 96e9
CPU_CORE_BANDWIDTH = 10e9  # bytes/s: a share of the VM's memory bandwidth per core
# Measured: this project's sparse training step in process on one thread of that VM trained 6,125 tokens/s
# (BENCHMARKS.md, "Data-parallel training": 2 layers, d_model 128, n_ctx 128, vocab 2048, batch 32, load 6-10),
# i.e. 0.669 s for a step of 17.7 GFLOPs (workers/estimate.py) and 0.020 s of optimizer traffic: 0.28 of the
# core's peak. `python -m sparsepipe.pipeline.devices` measures it again (tiny preset's shape); on a loaded
# machine it reads low (0.077 at load 28). AbsTopK's selections, the weight top-k and Python overhead are
# not FLOPs, which is why small models reach so little of the peak.
CPU_EFFICIENCY = 0.28
GPU_EFFICIENCY_ASSUMED = 0.2  # a guess for models of this size; no GPU has run this project yet


@dataclass(frozen=True)
class Device:
    name: str
    kind: str  # "cpu" or "cuda"
    fp32_flops: float
    bf16_flops: float
    bandwidth: float  # bytes/s
    memory: float  # bytes of one device
    efficiency: float
    measured: bool  # whether `efficiency` was measured (else assumed)
    host_cores: int  # CPU cores beside it, for the work that stays on CPUs (tokenize, prune trials without GPUs)
    host_memory: float  # bytes of host memory beside it
    units: int = 1  # devices of this kind the run may use at once

    def flops_per_s(self, bf16: bool) -> float:
        return (self.bf16_flops if bf16 else self.fp32_flops) * self.efficiency * self.units


def _machine_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16e9


# The host of a one-GPU node, as the lent H100 and H200 machines (.library/device: 16 cores, 128 GiB).
GPU_HOST_CORES, GPU_HOST_MEMORY = 16, 128 * 2**30


def _gpu(name: str, fp32: float, bf16: float, bandwidth: float, memory_gb: float) -> Device:
    return Device(
        name=name,
        kind="cuda",
        fp32_flops=fp32,
        bf16_flops=bf16,
        bandwidth=bandwidth,
        memory=memory_gb * 1e9,
        efficiency=GPU_EFFICIENCY_ASSUMED,
        measured=False,
        host_cores=GPU_HOST_CORES,
        host_memory=GPU_HOST_MEMORY,
    )


def cpu() -> Device:
    """This machine's CPU: one core per cell, all its cores for the run, all its memory."""
    cores, memory = os.cpu_count() or 1, _machine_memory()
    return Device(
        name="cpu",
        kind="cpu",
        fp32_flops=CPU_CORE_PEAK_FLOPS,
        bf16_flops=CPU_CORE_PEAK_FLOPS,
        bandwidth=CPU_CORE_BANDWIDTH,
        memory=memory,
        efficiency=CPU_EFFICIENCY,
        measured=True,
        host_cores=cores,
        host_memory=memory,
        units=cores,
    )


GPUS: dict[str, Device] = {
    "a100": _gpu("a100", 19.5e12, 312e12, 2.04e12, 80),
    "h100": _gpu("h100", 67e12, 989e12, 3.35e12, 80),
    "h200": _gpu("h200", 67e12, 989e12, 4.8e12, 141),
}
DEVICE_NAMES = ("cpu", *GPUS)


def device(name: str, units: int = 1) -> Device:
    """The named device; `units` GPUs of that kind (the CPU always counts its cores)."""
    key = name.lower()
    if key == "cpu":
        return cpu()
    if key not in GPUS:
        raise KeyError(f"unknown device {name!r}; known: {', '.join(DEVICE_NAMES)}")
    gpu = GPUS[key]
    return Device(**{**gpu.__dict__, "units": units})


def local_gpu_count() -> int:
    """CUDA devices this process sees (0 without torch's CUDA build)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def missing_gpus(cells: list[Any], available: int) -> str:
    """A problem line when cells ask for GPUs and none are here ("" otherwise)."""
    asking = [str(cell.ref) for cell in cells if cell.resources.num_gpus > 0]
    if not asking or available > 0:
        return ""
    shown = ", ".join(asking[:4]) + (f" and {len(asking) - 4} more" if len(asking) > 4 else "")
    return (
        f"{shown} ask for GPUs (execution.gpus_per_trainer) and execution.require_gpus is set, but this machine has "
        "no CUDA device torch can use: run on a GPU machine (with torch's CUDA build), or unset execution.require_gpus "
        "to train on the CPU"
    )


def measure_cpu_efficiency(steps: int = 5) -> dict[str, float]:
    """Time the tiny preset's sparse training step on one core. The efficiency is what makes the estimate of
    that step (workers/estimate.py: FLOPs at peak x efficiency, plus its memory traffic) equal its time."""
    import time

    import torch

    from ..workers.estimate import STEP_BYTES_PER_PARAM, model_cost
    from ..workers.nn.config import ModelConfig, SparsityConfig, TrainConfig
    from ..workers.nn.gpt import GPT
    from ..workers.nn.training import Trainer

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    model = ModelConfig(n_layer=2, d_model=128, n_head=8, d_head=16, n_ctx=64, vocab_size=2048)
    train = TrainConfig(model=model, sparsity=SparsityConfig(target_l0=1 / 16), batch_size=32, steps=1000)
    torch.manual_seed(0)
    trainer = Trainer(GPT(model), train)
    trainer.step = train.steps // 2  # at the target L0, as most of a run
    batch = torch.randint(0, 2048, (train.batch_size, model.n_ctx + 1))
    trainer.train_step(batch)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    seconds = (time.perf_counter() - started) / steps
    cost = model_cost(model, 2048)
    flops = 3 * cost.forward_flops(train.batch_size * model.n_ctx)
    compute_seconds = seconds - cost.params * STEP_BYTES_PER_PARAM / CPU_CORE_BANDWIDTH
    return {"step_seconds": seconds, "step_flops": flops, "efficiency": flops / compute_seconds / CPU_CORE_PEAK_FLOPS}


if __name__ == "__main__":
    print(measure_cpu_efficiency())
