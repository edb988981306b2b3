"""Build a random-init control from a trained checkpoint's folder: its config and seed, its final weight L0.

The trained model's `train_config.json` gives the seed, the L0 schedule and its length; the model is built exactly
as the training cell built it before its first step (`torch.manual_seed(seed)`, then `GPT(config)`), and weight
top-k is applied at the fractions the schedule reaches at the last step. Nothing is trained.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ..context import WorkContext
from ..nn.config import ModelConfig, TrainConfig
from ..nn.gpt import CONFIG_FILE, GPT, save_checkpoint
from ..nn.sparsity import L0Schedule, WeightSparsifier, nonzero_fractions
from ..train.summary import TRAIN_CONFIG_FILE, matrix_params

CONTROL_FILE = "random_init.json"


def random_init_model(model_config: ModelConfig, train: TrainConfig) -> tuple[GPT, dict[str, float]]:
    """The untrained model at the trained model's final weight L0, and those fractions per parameter kind."""
    torch.manual_seed(train.seed)
    model = GPT(model_config)
    if not train.sparsity.enabled:
        return model, {"matrix": 1.0}
    schedule = L0Schedule(train.sparsity, train.steps)
    with torch.no_grad():
        fractions = WeightSparsifier(model, schedule).apply(train.steps)
    return model, fractions


def run_random_init_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    run_random_init(ctx, params["source"])


def run_random_init(ctx: WorkContext, source: str) -> None:
    trained = Path(ctx.input("checkpoint"))
    train_file = trained / TRAIN_CONFIG_FILE
    if not train_file.exists():
        raise FileNotFoundError(
            f"{source} has no {TRAIN_CONFIG_FILE}: a random-init control needs the training seed and L0 schedule"
        )
    train = TrainConfig.model_validate_json(train_file.read_text())
    model_config = ModelConfig.model_validate_json((trained / CONFIG_FILE).read_text())
    model, fractions = random_init_model(model_config, train)
    out = Path(ctx.out_dir)
    save_checkpoint(model, out)
    shutil.copyfile(train_file, out / TRAIN_CONFIG_FILE)  # what it is the control of: its shape, seed, sparsity
    total, nonzero = matrix_params(model)
    record: dict[str, Any] = {
        "source": source,
        "trained_steps": 0,
        "seed": train.seed,
        "l0_fractions": fractions,
        "matrix_l0": nonzero / total,
        "l0_by_param": nonzero_fractions(model),
    }
    (out / CONTROL_FILE).write_text(json.dumps(record, indent=1))
    ctx.metrics.update({key: record[key] for key in ("source", "seed", "matrix_l0")})
