"""What a trained checkpoint is, for comparisons across models (paper Fig. 2, Fig. 3): its pretraining val
loss, its shape and sparsity, its learning rate and the lr-sweep group it belongs to.

Read from the files every pretrain, dense and bridges artifact holds (`train_config.json`, `metrics.jsonl`)
and from the loaded model (parameter counts).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..nn.config import TrainConfig
from ..nn.gpt import GPT

TRAIN_CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.jsonl"
MATCH_FILE = "match.json"  # written by the matched_dense stage


def final_val_loss(folder: Path) -> float | None:
    """The last val loss of `metrics.jsonl` (the final evaluation), None without one."""
    path = Path(folder) / METRICS_FILE
    if not path.exists():
        return None
    losses = [row["val_loss"] for row in map(json.loads, path.read_text().splitlines()) if row.get("val_loss")]
    return losses[-1] if losses else None


def lr_group(train: TrainConfig) -> str:
    """Runs that differ only in their base lr (and seed) share a group: an lr sweep's best run represents it."""
    data = train.model_dump(mode="json")
    data["optim"].pop("lr")
    data.pop("seed")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def matrix_params(model: GPT) -> tuple[int, int]:
    """(total, nonzero) entries of the weight matrices, the parameters weight sparsity's L0 counts."""
    params = dict(model.named_parameters())
    matrices = [params[name] for name, role in model.parameter_roles().items() if role.kind == "matrix"]
    return sum(p.numel() for p in matrices), sum(int(torch.count_nonzero(p)) for p in matrices)


def checkpoint_summary(folder: Path, model: GPT) -> dict[str, Any]:
    """Pretraining val loss, width, sparsity, lr and lr group of the checkpoint in `folder` (model loaded)."""
    config = model.config
    total, nonzero = matrix_params(model)
    summary: dict[str, Any] = {
        "val_loss": final_val_loss(folder),
        "d_model": config.d_model,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "d_mlp": config.mlp_width,
        "afrac": config.afrac,
        "matrix_params": total,
        "nonzero_matrix_params": nonzero,
    }
    path = Path(folder) / TRAIN_CONFIG_FILE
    if path.exists():
        train = TrainConfig.model_validate_json(path.read_text())
        summary |= {
            "sparse": train.sparsity.enabled,
            "target_l0": train.sparsity.target_l0 if train.sparsity.enabled else 1.0,
            "lr": train.optim.lr,
            "lr_group": lr_group(train),
        }
    else:
        summary |= {"sparse": nonzero < total, "target_l0": nonzero / max(1, total), "lr": None, "lr_group": None}
    return summary | match_summary(folder)


def match_summary(folder: Path) -> dict[str, Any]:
    """For a matched_dense checkpoint (match.json): which sparse model it was matched to, at which step of which
    dense run, the gap and the tolerance. It is one point of a run, not an lr-sweep member (lr_group None)."""
    path = Path(folder) / MATCH_FILE
    if not path.exists():
        return {}
    match = json.loads(path.read_text())
    return {
        "lr_group": None,
        "matched_to": match["sparse"],
        "matched_from": match["dense"],
        "matched_step": match["step"],
        "match_tolerance": match["tolerance"],
        "matched": match["matched"],
    }
