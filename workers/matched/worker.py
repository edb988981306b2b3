"""Pick, for one sparse model, the dense checkpoint nearest its pretraining val loss, and commit it.

Candidates are every checkpoint the dense cells kept (`train.kept`: earlier checkpoints of the run, with their
val losses, and the final one). The nearest in val loss wins (ties: the later step, then the cell name). The
artifact is a checkpoint like any other (model.safetensors, config.json, train_config.json, a metrics.jsonl
that ends at the chosen step, so its pretraining val loss reads as that step's) plus match.json: the sparse
model, its val loss, the chosen dense cell and step, the gap, the tolerance and whether it is within it.

A match outside the tolerance is still committed (and pruned), marked `"matched": false`: the report then says
"no matched dense model" and labels its ratio unmatched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..context import WorkContext
from ..train.kept import copy_checkpoint, read_kept
from ..train.summary import MATCH_FILE, METRICS_FILE, TRAIN_CONFIG_FILE, final_val_loss
from .config import SPARSE_INPUT

DENSE_INPUT_PREFIX = "dense"  # "dense" (the base cell) and "dense/<variant>"


def candidates(dense: dict[str, Path]) -> list[dict[str, Any]]:
    """Every kept checkpoint of every dense cell that has a val loss: {dense, step, val_loss, folder}."""
    found = []
    for name, root in sorted(dense.items()):
        for entry in read_kept(root):
            if entry["val_loss"] is not None:
                found.append({"dense": name, "step": entry["step"], "val_loss": entry["val_loss"], **entry})
    return found


def nearest(options: list[dict[str, Any]], loss: float) -> dict[str, Any]:
    if not options:
        raise ValueError("no dense checkpoint has a pretraining val loss to match against (metrics.jsonl, kept.json)")
    return min(options, key=lambda c: (abs(c["val_loss"] - loss), -(c["step"] or 0), c["dense"]))


def metrics_until(source: Path, step: int | None) -> str:
    """metrics.jsonl rows up to `step` (all of them for None): the curve as it was at the kept checkpoint."""
    lines = (source / METRICS_FILE).read_text().splitlines()
    if step is None:
        return "\n".join(lines) + "\n"
    return "".join(line + "\n" for line in lines if json.loads(line)["step"] <= step)


def run_matched(ctx: WorkContext, tolerance: float) -> None:
    sparse_folder = ctx.input(SPARSE_INPUT)
    loss = final_val_loss(sparse_folder)
    if loss is None:
        raise ValueError(f"the sparse model {ctx.cell!r} has no pretraining val loss (metrics.jsonl) to match")
    dense = {name: folder for name, folder in ctx.inputs.items() if name.startswith(DENSE_INPUT_PREFIX)}
    options = candidates(dense)
    chosen = nearest(options, loss)
    root = dense[chosen["dense"]]
    out = Path(ctx.out_dir)
    copy_checkpoint(root / chosen["folder"], out)
    shutil.copyfile(root / TRAIN_CONFIG_FILE, out / TRAIN_CONFIG_FILE)
    (out / METRICS_FILE).write_text(metrics_until(root, chosen["step"]))
    gap = abs(chosen["val_loss"] - loss)
    match = {
        "sparse": f"pretrain/{ctx.cell}",
        "sparse_val_loss": loss,
        "dense": chosen["dense"],
        "step": chosen["step"],
        "dense_val_loss": chosen["val_loss"],
        "val_loss_gap": gap,
        "tolerance": tolerance,
        "matched": gap <= tolerance,
        "candidates": [{k: c[k] for k in ("dense", "step", "val_loss")} for c in options],
    }
    (out / MATCH_FILE).write_text(json.dumps(match, indent=1))
    ctx.metrics.update({k: match[k] for k in ("sparse", "dense", "step", "val_loss_gap", "matched")})
