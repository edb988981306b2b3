"""The loss-vs-size curve is computed once per cell (issue 27): trials skip it and carry their ranking, and the cell's
curve from that ranking is the one the trial would have computed itself, row for row."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from pruning_toys import key_task

from sparsepipe.workers.prune.config import PruneConfig, PruneHyperparams
from sparsepipe.workers.prune.inputs import PruneInputs
from sparsepipe.workers.prune.losses import TaskData
from sparsepipe.workers.prune.trial import add_loss_vs_k, run_trial, run_trials
from sparsepipe.workers.prune.tuning_trial import TrialAssignment, TrialRecord, _record

SETTINGS = PruneConfig(
    steps=60, batch_pairs=8, eval_pairs=32, curve_points=6, hyper=PruneHyperparams(lr=0.03, k_coef=3e-3)
)
HYPERS = [SETTINGS.hyper, PruneHyperparams(lr=0.02, k_coef=1e-3, heaviside_temp=0.5)]
SEEDS = [0, 11]


@pytest.fixture(scope="module")
def task_data() -> TaskData:
    return TaskData(train=key_task(128, seed=2), eval=key_task(32, seed=1), test=key_task(24, seed=3))


def _cell_inputs(model, means, task_data: TaskData) -> PruneInputs:
    """What `add_loss_vs_k` reads of a cell's inputs: the model, its ablation values and the task data."""
    return PruneInputs(Path("unused"), model, means, None, task_data, Path("unused"))


def test_a_trial_carries_its_ranking_but_no_curve_and_its_json_neither(trained_model, trained_means, task_data):
    result = run_trial(trained_model, trained_means, task_data, SETTINGS.hyper, SETTINGS, seed=0)
    assert result.loss_vs_k == [] and "curve_s" not in result.timings
    assert result.ranking is not None and result.ranking.tau.numel() == result.total_nodes
    assert {row["k"] for row in result.bisection} <= set(result.ranking.val_losses)
    data = json.loads(json.dumps(result.to_json()))
    assert "ranking" not in data and data["loss_vs_k"] == []


def test_the_cells_curve_is_the_one_the_trial_computes_itself(trained_model, trained_means, task_data):
    """Same seed and hyperparameters: the curve from the carried ranking (coarse losses measured again) equals the
    in-trial curve (the bisection's coarse losses reused), which is the curve trials computed before issue 27."""
    in_trial = run_trial(trained_model, trained_means, task_data, SETTINGS.hyper, SETTINGS, seed=0, curve=True)
    result = run_trial(trained_model, trained_means, task_data, SETTINGS.hyper, SETTINGS, seed=0)
    add_loss_vs_k(_cell_inputs(trained_model, trained_means, task_data), SETTINGS, result)
    assert result.loss_vs_k == in_trial.loss_vs_k and len(in_trial.loss_vs_k) >= SETTINGS.curve_points
    assert sum("inverse_loss" in row for row in result.loss_vs_k) >= SETTINGS.curve_points - 1
    assert {row["val_pairs"] for row in result.loss_vs_k} == {8, 32}  # coarse points and probes both
    assert result.timings["curve_s"] > 0 and in_trial.timings["curve_s"] > 0
    # The curve's forwards are the cell's, not the trial's: the trial's work (CARBS's cost) has none of them.
    assert result.cost < in_trial.cost


def test_a_tuned_trial_s_record_brings_its_ranking_to_the_cell(trained_model, trained_means, task_data):
    """Trials trained together (a tuned cell's Ray task): each record, pickled as Ray returns it, gives the cell
    the curve its trial would have computed; the record's JSON (trials.jsonl) holds neither ranking nor curve."""
    results = run_trials(trained_model, trained_means, task_data, HYPERS, SETTINGS, SEEDS)
    curves = run_trials(trained_model, trained_means, task_data, HYPERS, SETTINGS, SEEDS, curve=True)
    inputs = _cell_inputs(trained_model, trained_means, task_data)
    for i, (result, with_curve) in enumerate(zip(results, curves)):
        assignment = TrialAssignment(f"000{i}", 1, SEEDS[i], HYPERS[i].model_dump())
        record: TrialRecord = pickle.loads(pickle.dumps(_record(assignment, 0.0, 1.0, 0.0, result, None, 2)))
        row = json.loads(json.dumps(record.to_json()))
        assert "ranking" not in row and row["result"]["loss_vs_k"] == [] and "ranking" not in row["result"]
        chosen = record.trial_result()
        add_loss_vs_k(inputs, SETTINGS, chosen)
        assert chosen.loss_vs_k == with_curve.loss_vs_k


def test_a_trial_without_its_ranking_has_no_curve_to_give(trained_model, trained_means, task_data):
    result = run_trial(trained_model, trained_means, task_data, SETTINGS.hyper, SETTINGS, seed=0)
    loaded = type(result).from_json(result.to_json())  # a record read back from JSON alone
    with pytest.raises(ValueError, match="carries no ranking"):
        add_loss_vs_k(_cell_inputs(trained_model, trained_means, task_data), SETTINGS, loaded)
    assert loaded.loss_vs_k == []
