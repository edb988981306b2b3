"""Checkpoints kept along a training run (`TrainConfig.keep_every`), for comparisons at matched loss.

The paper compares sparse and dense models at the same pretraining loss (Fig. 2). A dense run that ends far
below a sparse model's loss passes that loss on its way, so it keeps its weights at every evaluation whose
step is a multiple of `keep_every` (up to `keep_until`); the matched_dense stage later picks the one nearest
each sparse model.

While training, each kept checkpoint goes into the cell's progress area (`kept/step_NNNNNNN/`), so a resumed
cell still has the ones kept before it stopped; at the end they are copied into the artifact under `kept/`,
with `kept.json` listing step, val loss and folder of each, the final weights (the artifact's own
model.safetensors, folder ".") last.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..context import WorkContext
from ..nn.config import TrainConfig
from ..nn.gpt import CONFIG_FILE, GPT, WEIGHTS_FILE, save_checkpoint

KEPT_DIR = "kept"
KEPT_FILE = "kept.json"
FINAL_FOLDER = "."


def kept_folder(step: int) -> str:
    return f"{KEPT_DIR}/step_{step:07d}"


def keep_now(train: TrainConfig, step: int) -> bool:
    """Whether the evaluation at `step` keeps the weights (`keep_every`, `keep_until`; never the final step)."""
    every, until = train.keep_every, train.keep_until
    return every > 0 and step % every == 0 and step < train.steps and (until is None or step <= until)


def keep_checkpoint(ctx: WorkContext, model: GPT, step: int) -> None:
    """Save the model's weights at `step` into the progress area (into out_dir/kept/ without one)."""
    if ctx.progress is None:
        out_dir = getattr(ctx, "out_dir", None)  # a data-parallel rank outside the pipeline has neither
        if out_dir is not None:
            save_checkpoint(model, Path(out_dir) / kept_folder(step))
        return
    with tempfile.TemporaryDirectory() as scratch:
        save_checkpoint(model, scratch)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            ctx.progress.put(f"{kept_folder(step)}/{name}", Path(scratch) / name)


def write_kept(ctx: WorkContext, history: list[dict[str, Any]], train: TrainConfig) -> None:
    """Copy the kept checkpoints into the artifact and list them, with the final one, in kept.json."""
    if train.keep_every <= 0:
        return
    out = Path(ctx.out_dir)
    val_loss = {row["step"]: row["val_loss"] for row in history if row.get("val_loss") is not None}
    kept = []
    for step in sorted(s for s in val_loss if keep_now(train, s)):
        folder = kept_folder(step)
        if ctx.progress is None and not (out / folder / WEIGHTS_FILE).exists():
            continue  # kept nowhere (data-parallel outside the pipeline, see keep_checkpoint)
        if ctx.progress is not None:
            for name in (WEIGHTS_FILE, CONFIG_FILE):
                (out / folder).mkdir(parents=True, exist_ok=True)
                if not ctx.progress.get(f"{folder}/{name}", out / folder / name):
                    raise RuntimeError(f"the kept checkpoint {folder}/{name} is missing from this cell's progress area")
        kept.append({"step": step, "val_loss": val_loss[step], "folder": folder})
    kept.append({"step": train.steps, "val_loss": val_loss.get(train.steps), "folder": FINAL_FOLDER})
    (out / KEPT_FILE).write_text(json.dumps(kept, indent=1))


def read_kept(folder: Path) -> list[dict[str, Any]]:
    """kept.json of a training artifact; an artifact without kept checkpoints is its final weights alone."""
    path = Path(folder) / KEPT_FILE
    if path.exists():
        return json.loads(path.read_text())
    from .summary import final_val_loss

    return [{"step": None, "val_loss": final_val_loss(folder), "folder": FINAL_FOLDER}]


def copy_checkpoint(source: Path, target: Path) -> None:
    """The two files a checkpoint folder holds (nn.gpt.load_checkpoint reads them)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(Path(source) / name, target / name)
