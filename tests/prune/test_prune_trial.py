"""One pruning trial end to end on a model that solves a tiny synthetic task."""

from __future__ import annotations

import json
import math

import pytest
from pruning_toys import key_task

from sparsepipe.workers.prune.config import PruneConfig, PruneHyperparams
from sparsepipe.workers.prune.losses import TaskData
from sparsepipe.workers.prune.trial import run_trial

SETTINGS = PruneConfig(
    steps=100, batch_pairs=8, eval_pairs=32, curve_points=6, hyper=PruneHyperparams(lr=0.03, k_coef=3e-3)
)


@pytest.fixture(scope="module")
def task_data() -> TaskData:
    return TaskData(train=key_task(128, seed=2), eval=key_task(32, seed=1), test=key_task(24, seed=3))


@pytest.fixture(scope="module")
def result(trained_model, trained_means, task_data):
    """The trial of an untuned cell: its curve too."""
    return run_trial(trained_model, trained_means, task_data, SETTINGS.hyper, SETTINGS, seed=0, task="key", curve=True)


def test_trial_finds_a_small_faithful_circuit(result):
    assert result.reached_target and result.selection_loss <= SETTINGS.target_loss
    assert result.test_reached_target == (result.circuit_loss <= SETTINGS.target_loss)
    assert (
        result.test_pairs == result.pairs["test"] == 24
        and result.pairs["val"] == 32
        and result.loss_reduction == "mean"
    )
    assert 0 < result.nodes < result.total_nodes == 304
    assert result.nodes == sum(len(idx) for idx in result.kept.values())
    assert result.masks_kept <= result.active_after_training
    assert result.edges == result.edge_counts["edges"] > 0
    assert result.full_model_loss < 0.05
    # Without the circuit, or with a random one of the same shape, the task is lost.
    assert result.inverse_loss > 1.0 and result.random_circuit_loss > 1.0
    assert result.calibrated_loss <= result.circuit_loss + 1e-6
    assert result.calibration_train_loss_after <= result.calibration_train_loss_before


def test_bisection_record_and_curve_are_consistent(result):
    probes = {row["k"]: row["loss"] for row in result.bisection}
    assert probes[result.masks_kept] == pytest.approx(result.selection_loss)
    assert all(loss > SETTINGS.target_loss for k, loss in probes.items() if k < result.masks_kept)
    curve_k = [row["k"] for row in result.loss_vs_k]
    assert curve_k == sorted(set(curve_k)) and set(probes) <= set(curve_k)
    assert curve_k[-1] == result.total_nodes  # the curve runs to the full model
    assert result.loss_vs_k[-1]["loss"] < 0.05  # the full model on val (full_model_loss is test)
    assert len(result.bisection) <= 9  # about log2(active nodes) + 1 forwards of the eval set


def test_result_is_json_and_deterministic(result, trained_model, trained_means, task_data):
    data = json.loads(json.dumps(result.to_json()))
    assert data["kept"] == result.kept and set(data["timings"]) >= {"train_s", "bisect_s", "total_s"}
    again = run_trial(trained_model, trained_means, task_data, SETTINGS.hyper, SETTINGS, seed=0, task="key")
    assert again.kept == result.kept and again.circuit_loss == result.circuit_loss


def test_tied_qk_zero_ablation_trial_that_misses_its_target(trained_model, task_data):
    settings = SETTINGS.model_copy(update={"tie_qk_masks": True, "ablation": "zero", "steps": 20})
    result = run_trial(trained_model, None, task_data, settings.hyper, settings, seed=1)
    assert result.kept["0.attn.q"] == result.kept["0.attn.k"]
    assert result.nodes == result.masks_kept + len(result.kept["0.attn.q"])  # a tied entry keeps two nodes
    assert not result.reached_target and result.selection_loss > settings.target_loss
    assert result.masks_kept == result.active_after_training and len(result.bisection) == 1


def test_target_sweep_gives_one_circuit_per_target_from_one_ranking(trained_model, trained_means, task_data):
    settings = SETTINGS.model_copy(update={"targets": [0.05, 0.5]})
    assert settings.target_sweep == [0.05, 0.15, 0.5]  # target_loss is always swept
    result = run_trial(trained_model, trained_means, task_data, settings.hyper, settings, 0, "key", curve=True)
    assert [row["target_loss"] for row in result.sweep] == [0.05, 0.15, 0.5]
    main = result.sweep[1]
    assert (main["masks_kept"], main["nodes"], main["edges"]) == (result.masks_kept, result.nodes, result.edges)
    assert main["circuit_loss"] == result.circuit_loss and main["kept"] == result.kept
    # A looser target never needs a larger circuit (one ranking, bisection per target).
    sizes = [row["masks_kept"] for row in result.sweep]
    assert sizes == sorted(sizes, reverse=True)
    for row in result.sweep:
        assert row["reached_target"] == (row["selection_loss"] <= row["target_loss"])
        assert row["nodes"] == sum(len(idx) for idx in row["kept"].values())
    # The loss-vs-size curve holds every target's circuit (the probes of all bisections) and counts edges too; the
    # full model has the most.
    assert {row["masks_kept"] for row in result.sweep} <= {row["k"] for row in result.loss_vs_k}
    assert all("edges" in row for row in result.loss_vs_k)
    assert result.loss_vs_k[-1]["edges"] >= max(row["edges"] for row in result.loss_vs_k)


def test_binarized_loss_of_every_circuit(trained_model, trained_means, task_data, result):
    from sparsepipe.workers.prune.inputs import PruneInputs
    from sparsepipe.workers.prune.trial import add_binarization

    inputs = PruneInputs(None, trained_model, trained_means, None, task_data, tokens=None)
    settings = SETTINGS.model_copy(update={"binarize_pairs": 8})
    copy = type(result).from_json(json.loads(json.dumps(result.to_json())))
    add_binarization(inputs, settings, copy)
    row = copy.sweep[0]
    assert copy.binarized_loss == row["binarized_loss"] and math.isfinite(copy.binarized_loss)
    assert copy.binarized_init_loss == row["binarized_init_loss"] and math.isfinite(copy.binarized_init_loss)
    assert math.isfinite(row["binarized_fit_loss"])
    # Binarizing keeps the task mostly (the key task's features are on/off), far from chance (log 2).
    assert copy.binarized_loss < 0.5
