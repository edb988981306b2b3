"""Honest evaluation of a pruning trial (issue 10, items 5-7): held-out test losses, a deterministic
cost, and the two readings of the target loss (`prune.loss_reduction`)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from pruning_toys import key_task

from sparsepipe.pipeline.config import ConfigError, resolve_config
from sparsepipe.workers.nn.masks import NodeLayout, ablation_values
from sparsepipe.workers.prune.config import PruneConfig, PruneHyperparams
from sparsepipe.workers.prune.losses import TaskData, chunks, two_way_loss
from sparsepipe.workers.prune.masked import MaskedModel
from sparsepipe.workers.prune.trial import run_trial

SETTINGS = PruneConfig(
    steps=100, batch_pairs=8, eval_pairs=32, curve_points=6, hyper=PruneHyperparams(lr=0.03, k_coef=3e-3)
)
TRAIN, VAL, TEST = key_task(128, seed=2), key_task(32, seed=1), key_task(24, seed=3)


def _trial(model, means, test=TEST, **settings):
    params = SETTINGS.model_copy(update=settings)
    data = TaskData(train=TRAIN, eval=VAL, test=test)
    return run_trial(model, means, data, params.hyper, params, seed=0, task="key", curve=True)  # an untuned cell's


@pytest.fixture(scope="module")
def result(trained_model, trained_means):
    return _trial(trained_model, trained_means)


def _loss_on(model, means, batch, reduction="mean") -> float:
    layout = NodeLayout(model.config)
    masked = MaskedModel(model, layout, ablation_values(layout, means, "mean"))
    return float(two_way_loss(masked.gaps(chunks(batch, 8), None), batch.correct, reduction=reduction))


# ------------------------------------------------------------------ held-out evaluation


def test_the_full_model_loss_is_measured_on_the_test_pairs(result, trained_model, trained_means):
    assert result.full_model_loss == pytest.approx(_loss_on(trained_model, trained_means, TEST), abs=1e-6)
    assert result.test_pairs == TEST.n_pairs == 24 and result.pairs == {
        "train": 128,
        "calibration": 32,
        "val": 32,
        "test": 24,
    }


def test_test_pairs_never_choose_the_circuit_and_every_reported_loss_comes_from_them(
    result, trained_model, trained_means
):
    """Swap the test set for one whose answers are flipped (and of another size): the circuit, its size and
    its val selection loss stay bit for bit, while every reported loss follows the test pairs."""
    flipped = key_task(20, seed=4)
    flipped = replace(flipped, correct=1 - flipped.correct)
    other = _trial(trained_model, trained_means, test=flipped)
    assert other.kept == result.kept and other.masks_kept == result.masks_kept and other.edges == result.edges
    assert (
        other.selection_loss == result.selection_loss
        and other.bisection == result.bisection
        and other.loss_vs_k == result.loss_vs_k
    )
    assert other.reached_target and other.logit_scale == result.logit_scale and other.logit_bias == result.logit_bias
    assert other.test_pairs == 20 and not other.test_reached_target
    assert other.full_model_loss > 2.0 and other.circuit_loss > 1.0 and other.calibrated_loss > 1.0
    # On the flipped pairs ablating the circuit *helps*: the inverse and random losses are test losses too.
    assert other.inverse_loss < result.inverse_loss and other.random_circuit_loss != result.random_circuit_loss


# ------------------------------------------------------------------------------- cost


def test_two_identical_trials_cost_the_same(result, trained_model, trained_means):
    again = _trial(trained_model, trained_means)
    assert again.cost == result.cost > 0 and again.work == result.work
    assert again.timings["total_s"] > 0  # wall time is recorded, but it is not the cost


def test_the_cost_counts_every_forward_pass(result):
    """Every evaluation forward holds one whole set (EVAL_CHUNK_FACTOR x 8 pairs >= 32): val (32 pairs, 64 rows),
    the coarse quarter of val (8 pairs), calibration (32) and the test set (24: circuit, inverse, random circuit;
    the full model is evaluated once per task of trials, in no trial's work)."""
    work = result.work
    train_rows = 2 * SETTINGS.steps * SETTINGS.batch_pairs
    evaluations = work["forwards"] - SETTINGS.steps - 1 - 3  # val and coarse-val forwards
    eval_rows = work["rows"] - train_rows - 64 - 3 * 48
    # evaluations = full + coarse, eval_rows = 64 full + 16 coarse: both counts are whole and cover the curve
    full, remainder = divmod(eval_rows - 16 * evaluations, 48)
    coarse = evaluations - full
    assert remainder == 0 and full >= 0 and coarse >= 0
    curve = result.loss_vs_k
    inverse = [row for row in curve if "inverse_loss" in row]
    assert full >= sum(row["val_pairs"] == 32 for row in curve) + sum(row["val_pairs"] == 32 for row in inverse)
    assert coarse >= sum(row["val_pairs"] == 8 for row in curve) + sum(row["val_pairs"] == 8 for row in inverse)
    assert 0 < work["backward_tokens"] <= train_rows * 12 < work["tokens"]  # toy prompts are at most 12 tokens
    assert work["cost"] == result.cost == work["tokens"] + 2 * work["backward_tokens"]


def test_more_mask_training_costs_more(result, trained_model, trained_means):
    longer = _trial(trained_model, trained_means, steps=150)
    assert longer.work["backward_tokens"] > result.work["backward_tokens"] and longer.cost > result.cost


# --------------------------------------------------------------------- loss reduction


def test_pair_sum_is_the_sum_over_a_pairs_two_prompts():
    gap = torch.tensor([2.0, -1.0, 0.5, 3.0])
    correct = torch.tensor([0, 1, 0, 1])
    per_prompt = torch.nn.functional.softplus(-(correct * 2 - 1) * gap)
    assert float(two_way_loss(gap, correct)) == pytest.approx(float(per_prompt.mean()))
    summed = float(two_way_loss(gap, correct, reduction="pair_sum"))
    assert summed == pytest.approx(float(per_prompt[0] + per_prompt[1] + per_prompt[2] + per_prompt[3]) / 2)
    assert summed == pytest.approx(2 * float(two_way_loss(gap, correct)))
    with pytest.raises(ValueError, match="unknown loss reduction 'sum'"):
        two_way_loss(gap, correct, reduction="sum")


def test_pair_sum_at_a_target_is_mean_at_half_that_target(result, trained_model, trained_means):
    """The same masks train either way; pair_sum only makes the target stricter, so its circuit is the one
    mean selects at half the target, at least as large as mean's at the same target, with every loss doubled."""
    summed = _trial(trained_model, trained_means, loss_reduction="pair_sum")
    halved = _trial(trained_model, trained_means, target_loss=SETTINGS.target_loss / 2)
    assert summed.loss_reduction == "pair_sum" and summed.target_loss == SETTINGS.target_loss
    assert summed.kept == halved.kept and summed.masks_kept == halved.masks_kept >= result.masks_kept
    assert summed.nodes >= result.nodes and summed.edges >= result.edges
    assert summed.train_history == result.train_history  # training optimises the mean either way
    for key in (
        "selection_loss",
        "circuit_loss",
        "calibrated_loss",
        "full_model_loss",
        "inverse_loss",
        "random_circuit_loss",
    ):
        assert getattr(summed, key) == pytest.approx(2 * getattr(halved, key), rel=1e-5), key
    assert summed.full_model_loss == pytest.approx(_loss_on(trained_model, trained_means, TEST, "pair_sum"), abs=1e-6)
    assert summed.reached_target == (summed.selection_loss <= SETTINGS.target_loss)


def test_loss_reduction_is_a_checked_config_key():
    assert PruneConfig().loss_reduction == "mean"
    assert resolve_config("smoke", assignments=["prune.loss_reduction=pair_sum"]).prune.loss_reduction == "pair_sum"
    with pytest.raises(ConfigError, match="prune.loss_reduction"):
        resolve_config("smoke", assignments=["prune.loss_reduction=sum"])


def test_losses_are_finite(result):
    for key in (
        "selection_loss",
        "circuit_loss",
        "calibrated_loss",
        "full_model_loss",
        "inverse_loss",
        "random_circuit_loss",
    ):
        assert math.isfinite(getattr(result, key)), key
