"""Device choice and device names, in one place for the stages, the kernels and the benchmarks."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def pick_device(num_gpus: float | None = None) -> str:
    """ "cuda" when CUDA is available and GPUs were given (None: any number), else "cpu"."""
    if num_gpus is not None and num_gpus <= 0:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(device: str | torch.device | None = None) -> str:
    """What a benchmark ran on: the GPU's name, else the CPU model (from /proc/cpuinfo where there is one)."""
    device = torch.device(device if device is not None else pick_device())
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
