"""Inputs of a tuned prune cell: a tiny model trained on a real task, its tokenizer and its mean cache.

(Not in conftest.py: test modules import these by name, and every test folder has a conftest.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from sparsepipe.tasks import load_task, load_tokenizer
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.prune.config import PruneConfig


def _import_by_path(path: Path) -> ModuleType:
    """A helper module of another test folder, whatever sys.path holds (pytest adds only this folder)."""
    if path.stem in sys.modules:
        return sys.modules[path.stem]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


stage_inputs = _import_by_path(Path(__file__).parents[1] / "stage_inputs.py")
pruning_toys = _import_by_path(Path(__file__).parents[1] / "pruning_toys.py")
TASK = stage_inputs.TASK

# Trials of about a second on one core. The target, 0.3, is just above the trained toy's full-model loss on
# the val pairs (0.25; 0.27 on test; val and test draw from both held-out templates): some hyperparameters
# reach it and some miss, so CARBS sees both.
SETTINGS = PruneConfig(
    steps=20,
    batch_pairs=8,
    eval_pairs=16,
    train_pool_pairs=64,
    max_tokens=stage_inputs.N_CTX,
    curve_points=4,
    target_loss=0.3,
)


def train_on_task(model: GPT, tokenizer_dir: Path, task: str, steps: int) -> GPT:
    """Fit the model to the task's two-way loss, so that pruning it finds circuits of varied size."""
    train = load_task(task, load_tokenizer(tokenizer_dir), "train", 256, seed=0, max_tokens=model.config.n_ctx)
    return pruning_toys.fit_two_way(model, train, steps, batch_pairs=16)


def write_cell_inputs(root: Path) -> dict[str, Path]:
    """The inputs of a prune cell (checkpoint, tokens, mean_cache) as local folders under `root`."""
    tokens = stage_inputs.write_tokens(root / "tokens")
    torch.manual_seed(0)
    model = train_on_task(GPT(stage_inputs.model_config()), tokens, TASK, steps=40)
    checkpoint = stage_inputs.write_checkpoint(root / "checkpoint", model)
    stage_inputs.write_mean_cache(root / "mean_cache", tokens, checkpoint)
    return {"checkpoint": checkpoint, "tokens": tokens, "mean_cache": root / "mean_cache"}
