"""Controls in the prune stage: the cells `prune.controls` adds, resample ablation, one circuit under every ablation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from stage_inputs import TASK, small_prune_config, write_checkpoint, write_mean_cache, write_tokens

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import default_registry
from sparsepipe.tasks import load_task, load_tokenizer
from sparsepipe.workers.context import local_context
from sparsepipe.workers.nn.gpt import load_checkpoint
from sparsepipe.workers.nn.masks import NodeLayout, ablation_values
from sparsepipe.workers.prune.inputs import pretraining_rows
from sparsepipe.workers.prune.masked import MaskedModel
from sparsepipe.workers.prune.resample import pattern_index, resample_values
from sparsepipe.workers.prune.runnable import load_circuit
from sparsepipe.workers.prune.worker import run_prune
from sparsepipe.workers.stage import ConfigError


def cells(*assignments: str) -> dict[str, list[str]]:
    registry = default_registry()
    config = resolve_config("smoke", assignments=list(assignments), environ={})
    return {stage: [c.cell for c in listed] for stage, listed in registry.list_cells(config, registry.order).items()}


def test_smoke_prunes_every_control():
    listed = cells()
    assert listed["random_init"] == ["pretrain/smoke", "dense", "matched_dense/smoke"]
    assert {"random_init/pretrain/smoke", "random_init/dense"} <= set(listed["mean_cache"])
    prune = set(listed["prune"])
    assert {
        "random_init/pretrain/smoke:single_double_quote",
        "random_init/dense:single_double_quote",
        "pretrain/smoke:single_double_quote__flipped",
        "pretrain/smoke:single_double_quote__shuffled",
        "dense:single_double_quote__shuffled",
        "bridges/smoke:single_double_quote__flipped",
    } <= prune
    # Controls run on prune.control_tasks (smoke: one task), and a random-init model on the real task only.
    assert "pretrain/smoke:bracket_counting__flipped" not in prune
    assert not any(c.startswith("random_init/") and "__" in c for c in prune)


def test_a_control_cell_runs_the_same_pruning_and_budget_with_one_seed_and_no_binarization():
    registry = default_registry()
    config = resolve_config("smoke", assignments=["prune.seeds=3"], environ={})
    params = {c.cell: c.params for c in registry.list_cells(config, registry.order)["prune"]}
    circuit = params["pretrain/smoke:single_double_quote"]
    assert circuit["prune"]["seeds"] == 3 and circuit["prune"]["binarize_pairs"] > 0
    for control in (
        "pretrain/smoke:single_double_quote__flipped",
        "pretrain/smoke:single_double_quote__shuffled",
        "random_init/pretrain/smoke:single_double_quote",
    ):
        assert params[control]["prune"] == {**circuit["prune"], "seeds": 1, "binarize_pairs": 0}
        assert params[control].get("tune") == circuit.get("tune")


def test_a_control_follows_its_checkpoint_and_controls_can_be_off():
    listed = cells('prune.checkpoints=["pretrain/smoke"]')
    assert listed["random_init"] == ["pretrain/smoke"]
    assert "random_init/pretrain/smoke:single_double_quote" in listed["prune"]
    assert not any(c.startswith("dense") or c.startswith("random_init/dense") for c in listed["prune"])
    off = cells("prune.controls=[]")
    assert off["random_init"] == [] and not any("__" in c for c in off["prune"])
    assert len(off["prune"]) == 8  # 4 checkpoints (pretrain, dense, matched_dense, bridges) x 2 tasks


@pytest.mark.parametrize(
    "assignment, key",
    [('prune.controls=["random_init", "nonsense"]', "prune.controls"), ("prune.ablation=gaussian", "prune.ablation")],
)
def test_an_unknown_control_or_ablation_names_the_key(assignment, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_config("smoke", assignments=[assignment], environ={})


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory) -> Path:
    return write_tokens(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("checkpoint"))


def test_resample_ablation_draws_one_pretraining_pattern_per_batch(tokens_dir, checkpoint_dir):
    model = load_checkpoint(checkpoint_dir).eval()
    layout = NodeLayout(model.config)
    rows = pretraining_rows(tokens_dir, 4)
    values = resample_values(model, rows)
    masked = MaskedModel(model, layout, ablation_values(layout, values, "resample"))
    batch = load_task(TASK, load_tokenizer(tokens_dir), "val", 12, max_tokens=model.config.n_ctx)
    everything_ablated = torch.zeros(layout.n_nodes)
    chosen = set()
    for start in range(0, 12, 3):
        piece = batch.select(range(start, start + 3))
        with torch.no_grad():
            _, recorded = model(
                piece.tokens,
                record=layout.names,
                interventions=masked.interventions(everything_ablated, tokens=piece.tokens),
            )
        context = pattern_index(piece.tokens, 4)
        chosen.add(context)
        width = piece.tokens.shape[1]
        for name in layout.names:
            # Every prompt of the batch, position by position, carries the same pretraining context's activations.
            expected = values[name][context, :width].expand_as(recorded[name])
            assert torch.allclose(recorded[name], expected, atol=1e-6), name
        # The same batch always draws the same context.
        assert pattern_index(piece.tokens.clone(), 4) == context
    assert len(chosen) > 1


def test_a_written_circuit_is_scored_under_every_ablation_with_its_masks(tmp_path, tokens_dir, checkpoint_dir):
    params = small_prune_config(ablation="resample", resample_contexts=4)
    write_mean_cache(tmp_path / "means", tokens_dir, checkpoint_dir)
    inputs = {"checkpoint": checkpoint_dir, "tokens": tokens_dir, "mean_cache": tmp_path / "means"}
    ctx = local_context(tmp_path / "out", inputs=inputs, cell="pretrain/tiny:" + TASK)
    run_prune(ctx, params, TASK)
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    losses = result["ablation_losses"]
    assert losses["trained_under"] == "resample" and set(losses) == {"trained_under", "mean", "zero", "resample"}
    # Under the ablation the masks were trained with, the score is the reported circuit loss (same masks).
    assert losses["resample"]["circuit_loss"] == pytest.approx(result["circuit_loss"], abs=1e-6)
    assert losses["mean"] != losses["zero"] != losses["resample"]  # a different value for the ablated nodes
    assert 0 <= result["circuit_accuracy"] <= 1 and 0 <= result["calibrated_accuracy"] <= 1
    assert result["circuit_accuracy"] == losses["resample"]["circuit_accuracy"]
    assert sum("inverse_loss" in row for row in result["loss_vs_k"]) >= params.curve_points - 1
    if result["reached_target"]:
        assert result["binarized_own_scale_loss"] is not None
    assert ctx.metrics["ablation_losses"] == losses
    # The written circuit runs again from its artifact (the Python API) under the ablation it was pruned with.
    circuit = load_circuit(tmp_path / "out", inputs)
    assert circuit.loss("test") == pytest.approx(result["circuit_loss"], abs=1e-5)


def test_the_binarized_loss_at_the_circuits_own_scale_takes_a_grown_gap_back_out():
    from sparsepipe.workers.prune.losses import two_way_loss
    from sparsepipe.workers.prune.trial import own_scale_loss

    correct = torch.tensor([0, 1, 0, 1])
    circuit = torch.tensor([-0.5, 0.4, -0.3, 0.6])  # every sign right, small gaps (gap = logit 1 - logit 0)
    grown = 40 * circuit  # the same signs, as if the fitted step levels had grown every gap
    assert float(two_way_loss(grown, correct)) < 0.3 * float(two_way_loss(circuit, correct))
    assert own_scale_loss(grown, circuit, correct, "mean") == pytest.approx(float(two_way_loss(circuit, correct)))
