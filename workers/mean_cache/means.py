"""The mean-cache artifact's format: `means.safetensors`, node-location hook name -> [width] float32.

Kept apart from the worker that computes it, so a reader (prune) imports the format only.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor

MEANS_FILE = "means.safetensors"


def save_means(means: dict[str, Tensor], folder: Path) -> None:
    save_file({name: t.contiguous() for name, t in means.items()}, str(Path(folder) / MEANS_FILE))


def load_means(folder: str | Path) -> dict[str, Tensor]:
    path = Path(folder) / MEANS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no {MEANS_FILE}: it is not a mean-cache artifact")
    return load_file(str(path))
