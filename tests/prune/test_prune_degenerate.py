"""Degenerate circuits are results (issue 26): the empty circuit, a target never reached, a loss constant in the
masks, each through every phase of a prune cell (bisection, calibration, binarization, edges, viewer, figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from stage_inputs import TASK, model_config, small_prune_config, write_checkpoint, write_mean_cache, write_tokens

from sparsepipe.workers.context import local_context
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.prune.binarize import StepFunctions, fit_binarization, refine_steps
from sparsepipe.workers.prune.degenerate import CIRCUIT, EMPTY, NOT_REACHED, WHOLE_MODEL, circuit_kind
from sparsepipe.workers.prune.worker import run_prune

LOOSE, TIGHT = 1e4, 1e-4  # above any two-way loss these models reach, and below all of them


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory) -> Path:
    return write_tokens(tmp_path_factory.mktemp("tokens"))


def _cell_inputs(root: Path, tokens: Path, model: GPT | None) -> dict[str, Path]:
    checkpoint = write_checkpoint(root / "checkpoint", model)
    write_mean_cache(root / "means", tokens, checkpoint)
    return {"checkpoint": checkpoint, "tokens": tokens, "mean_cache": root / "means"}


@pytest.fixture(scope="module")
def random_inputs(tmp_path_factory, tokens_dir) -> dict[str, Path]:
    return _cell_inputs(tmp_path_factory.mktemp("random"), tokens_dir, None)


@pytest.fixture(scope="module")
def constant_inputs(tmp_path_factory, tokens_dir) -> dict[str, Path]:
    """A model whose attention and MLP write nothing to the residual stream: no node mask changes its loss."""
    torch.manual_seed(0)
    model = GPT(model_config())
    with torch.no_grad():
        for block in model.blocks:
            for projection in (block.attn.c_proj, block.mlp.c_proj):
                projection.weight.zero_()
                projection.bias.zero_()
    return _cell_inputs(tmp_path_factory.mktemp("constant"), tokens_dir, model)


def _prune(tmp_path: Path, inputs: dict[str, Path], **settings) -> tuple[dict, dict, str]:
    params = small_prune_config(binarize_pairs=4, binarize_steps=3, **settings)
    ctx = local_context(tmp_path / "out", inputs=inputs, cell="pretrain/tiny:" + TASK)
    run_prune(ctx, params, TASK)
    out = tmp_path / "out"
    assert (out / "loss_vs_k.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((out / "result.json").read_text())
    circuit = json.loads((out / "circuit.json").read_text())
    assert ctx.metrics["circuit"] == result["circuit"] == circuit["circuit_kind"]
    return result, circuit, (out / "circuit.html").read_text()


def test_circuit_kinds():
    assert circuit_kind(0, 10, True) == EMPTY
    assert circuit_kind(10, 10, True) == WHOLE_MODEL
    assert circuit_kind(4, 10, True) == CIRCUIT
    assert circuit_kind(0, 10, False) == circuit_kind(10, 10, False) == NOT_REACHED


def test_refinement_of_nothing_keeps_the_initialisation():
    empty = StepFunctions(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0))
    assert refine_steps(empty, lambda steps: torch.tensor(0.5), steps=5, lr=0.1) is empty
    one = StepFunctions(torch.tensor([3]), torch.tensor([-1.0]), torch.tensor([1.0]))
    assert refine_steps(one, lambda steps: torch.tensor(0.5), steps=5, lr=0.1) is one  # no level reaches the loss
    fitted = fit_binarization(
        torch.zeros(6, 0), empty.nodes, lambda steps: [0.25], lambda steps: torch.tensor(0.25), 5, 0.1, lambda s: 0.25
    )
    assert fitted.init_loss == fitted.final_loss == 0.25


def test_a_sweep_from_below_the_full_model_to_above_the_ablated_one(tmp_path, random_inputs):
    result, circuit, page = _prune(tmp_path, random_inputs, targets=[TIGHT, LOOSE], target_loss=LOOSE)
    tight, loose = result["sweep"]
    assert [row["target_loss"] for row in result["sweep"]] == [TIGHT, LOOSE]
    assert tight["circuit"] == NOT_REACHED and tight["binarized_loss"] is None and not tight["reached_target"]
    # The empty circuit: its losses are the ablated model's, and binarizing nothing changes nothing.
    assert loose["circuit"] == EMPTY and loose["nodes"] == loose["edges"] == 0 and loose["reached_target"]
    assert loose["binarized_loss"] == pytest.approx(loose["circuit_loss"])
    assert result["circuit"] == EMPTY and result["nodes"] == 0 and result["edges"] == 0
    assert result["binarized_loss"] == pytest.approx(result["circuit_loss"])
    assert result["inverse_loss"] == pytest.approx(result["full_model_loss"])  # ablating nothing
    assert circuit["nodes"] == [] and circuit["activations"]["skipped"].startswith("0 nodes")
    assert "node_ablation" not in circuit and "The empty circuit reaches the target" in page


def test_a_target_never_reached_is_written_as_every_active_node(tmp_path, random_inputs):
    result, circuit, page = _prune(tmp_path, random_inputs, targets=[TIGHT], target_loss=TIGHT)
    assert result["circuit"] == NOT_REACHED and not result["reached_target"]
    assert result["masks_kept"] == result["active_after_training"] and result["binarized_loss"] is None
    assert len(circuit["nodes"]) == result["nodes"] and "The target was not reached" in page


def test_a_loss_constant_in_the_masks(tmp_path, constant_inputs):
    result, circuit, page = _prune(tmp_path, constant_inputs, targets=[TIGHT, LOOSE], target_loss=LOOSE)
    assert result["full_model_loss"] == pytest.approx(result["circuit_loss"], abs=1e-6)
    assert result["full_model_loss"] == pytest.approx(result["random_circuit_loss"], abs=1e-6)
    assert [row["circuit"] for row in result["sweep"]] == [NOT_REACHED, EMPTY]
    assert result["circuit"] == EMPTY and result["binarized_loss"] == pytest.approx(result["circuit_loss"])
