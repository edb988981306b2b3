"""The matched_dense stage: the dense checkpoint nearest each sparse model's pretraining loss (paper Fig. 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import default_registry
from sparsepipe.workers.context import local_context
from sparsepipe.workers.matched.worker import MATCH_FILE, run_matched
from sparsepipe.workers.nn.config import ModelConfig, SparsityConfig, TrainConfig
from sparsepipe.workers.nn.gpt import GPT, load_checkpoint, save_checkpoint
from sparsepipe.workers.train.kept import KEPT_FILE, kept_folder
from sparsepipe.workers.train.summary import checkpoint_summary, final_val_loss

MODEL = ModelConfig(n_layer=1, d_model=16, n_head=2, d_head=8, n_ctx=16, vocab_size=32)


def _model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(MODEL)


def _metrics(folder: Path, losses: dict[int, float]) -> None:
    rows = [{"step": step, "val_loss": loss, "train_loss": loss} for step, loss in sorted(losses.items())]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _sparse(folder: Path, loss: float) -> Path:
    save_checkpoint(_model(0), folder)
    _metrics(folder, {10: loss + 1, 20: loss})
    return folder


def _dense(folder: Path, losses: dict[int, float]) -> Path:
    """A dense artifact whose run kept a checkpoint at every step of `losses` but the last (its final weights);
    each checkpoint's weights come from seed = step, so a test can tell which one was copied."""
    final = max(losses)
    save_checkpoint(_model(final), folder)
    train = TrainConfig(model=MODEL, sparsity=SparsityConfig(enabled=False), steps=final)
    (folder / "train_config.json").write_text(train.model_dump_json())
    _metrics(folder, losses)
    kept = []
    for step, loss in sorted(losses.items()):
        if step != final:
            save_checkpoint(_model(step), folder / kept_folder(step))
        kept.append({"step": step, "val_loss": loss, "folder": kept_folder(step) if step != final else "."})
    (folder / KEPT_FILE).write_text(json.dumps(kept))
    return folder


def _same_weights(a: GPT, b: GPT) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    return {
        "sparse": _sparse(tmp_path / "sparse", 3.0),
        "dense": _dense(tmp_path / "dense", {100: 5.0, 200: 3.3, 300: 3.04, 400: 2.9, 500: 2.5}),
        "dense/wide": _dense(tmp_path / "wide", {100: 4.0, 200: 2.2}),
    }


def test_picks_the_nearest_kept_dense_checkpoint_and_commits_it_as_a_checkpoint(tmp_path, inputs):
    ctx = local_context(tmp_path / "out", inputs=inputs, cell="a")
    run_matched(ctx, tolerance=0.05)
    out = tmp_path / "out"
    match = json.loads((out / MATCH_FILE).read_text())
    # 3.04 (dense, step 300) is 0.04 from 3.0; 2.9 is 0.1, the wide run's 2.2 and 4.0 are farther.
    assert (match["dense"], match["step"]) == ("dense", 300)
    assert match["val_loss_gap"] == pytest.approx(0.04) and match["matched"] is True
    assert len(match["candidates"]) == 7
    assert _same_weights(load_checkpoint(out), _model(300))
    # The artifact reads as the checkpoint it is: pretraining val loss of step 300, a dense model matched to a.
    assert final_val_loss(out) == 3.04
    info = checkpoint_summary(out, load_checkpoint(out))
    assert info["val_loss"] == 3.04 and info["sparse"] is False
    assert info["matched_to"] == "pretrain/a" and info["lr_group"] is None and info["matched"] is True
    assert ctx.metrics["val_loss_gap"] == pytest.approx(0.04)


def test_a_match_outside_the_tolerance_is_committed_and_marked_unmatched(tmp_path, inputs):
    ctx = local_context(tmp_path / "out", inputs=inputs, cell="a")
    run_matched(ctx, tolerance=0.01)
    match = json.loads((tmp_path / "out" / MATCH_FILE).read_text())
    assert match["step"] == 300 and match["matched"] is False and match["tolerance"] == 0.01


def test_a_dense_run_without_kept_checkpoints_offers_its_final_weights(tmp_path):
    dense = tmp_path / "dense"
    save_checkpoint(_model(7), dense)
    _metrics(dense, {10: 4.0, 20: 3.1})
    (dense / "train_config.json").write_text(
        TrainConfig(model=MODEL, sparsity=SparsityConfig(enabled=False)).model_dump_json()
    )
    ctx = local_context(
        tmp_path / "out", inputs={"sparse": _sparse(tmp_path / "sparse", 3.0), "dense": dense}, cell="a"
    )
    run_matched(ctx, tolerance=0.05)
    match = json.loads((tmp_path / "out" / MATCH_FILE).read_text())
    assert match["step"] is None and match["dense_val_loss"] == 3.1 and match["matched"] is False
    assert _same_weights(load_checkpoint(tmp_path / "out"), _model(7))


def test_smoke_plan_prunes_the_matched_checkpoint_like_any_other():
    config = resolve_config("smoke", environ={})
    registry = default_registry()
    cells = registry.list_cells(config, registry.closure(["prune"]))
    matched = cells["matched_dense"]
    assert [c.cell for c in matched] == ["smoke"] and matched[0].params == {"tolerance": 0.05}
    assert set(matched[0].inputs) == {"sparse", "dense"}
    assert "matched_dense/smoke" in {c.cell for c in cells["mean_cache"]}
    assert "matched_dense/smoke:single_double_quote" in {c.cell for c in cells["prune"]}
    no_match = resolve_config("smoke", assignments=["matched.enabled=false"], environ={})
    assert registry.list_cells(no_match, registry.closure(["matched_dense"]))["matched_dense"] == []
