"""`prune.seeds` and the bootstrap intervals: each seed's circuit, their spread, an interval for every loss."""

from __future__ import annotations

import json
import statistics

import pytest
from stage_inputs import TASK, small_prune_config, write_checkpoint, write_mean_cache, write_tokens
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.intervals import bootstrap_interval, loss_intervals
from sparsepipe.workers.prune.seeds import repeat_seeds, seed_spread
from sparsepipe.workers.prune.worker import run_prune

REPORTED_LOSSES = {
    "circuit_loss",
    "calibrated_loss",
    "full_model_loss",
    "inverse_loss",
    "random_circuit_loss",
    "binarized_loss",
}


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_pairs():
    few = [0.1, 0.9, 0.3, 0.5, 0.2, 0.8, 0.4, 0.6]
    low, high = bootstrap_interval(few)
    assert low < statistics.mean(few) < high and 0.1 < low and high < 0.9
    assert bootstrap_interval(few) == [low, high]  # a fixed resampling seed: the same interval every run
    many_low, many_high = bootstrap_interval(few * 16)
    assert many_high - many_low < (high - low) / 2
    assert bootstrap_interval([0.25] * 5) == [0.25, 0.25]
    assert bootstrap_interval([]) is None


def test_seed_spread_and_repeat_seeds():
    rows = [{"nodes": 4, "edges": 10, "circuit_loss": 0.1}, {"nodes": 8, "edges": 30, "circuit_loss": 0.2}]
    rows.append({"seed": 9, "error": "ValueError: boom"})  # a repeat that raised counts for nothing
    assert seed_spread(rows) == {
        "nodes": {"median": 6, "min": 4, "max": 8},
        "edges": {"median": 20, "min": 10, "max": 30},
        "circuit_loss": {"median": pytest.approx(0.15), "min": 0.1, "max": 0.2},
    }
    assert repeat_seeds(7, 1) == []
    assert len(set(repeat_seeds(7, 3)) | {7}) == 3


def test_prune_cell_with_three_seeds_reports_each_seed_its_spread_and_intervals(tmp_path):
    tokens = write_tokens(tmp_path / "tokens")
    checkpoint = write_checkpoint(tmp_path / "checkpoint")
    params = small_prune_config(seeds=3, binarize_steps=2)
    write_mean_cache(tmp_path / "means", tokens, checkpoint)
    inputs = {"checkpoint": checkpoint, "tokens": tokens, "mean_cache": tmp_path / "means"}
    ctx = local_context(tmp_path / "out", inputs=inputs, cell="pretrain/tiny:" + TASK)
    run_prune(ctx, params, TASK)

    result = json.loads((tmp_path / "out" / "result.json").read_text())
    seeds = result["seeds"]
    assert [row["seed"] for row in seeds] == [params.seed, *repeat_seeds(params.seed, 3)]
    assert seeds[0]["edges"] == result["edges"] and seeds[0]["circuit_loss"] == result["circuit_loss"]
    # The full model is the same whatever the mask seed; the circuits are each seed's own.
    assert len({row["full_model_loss"] for row in seeds}) == 1
    assert result["seed_spread"] == seed_spread(seeds)
    assert set(result["seed_spread"]) == {"nodes", "edges", "circuit_loss"}
    intervals = result["intervals"]
    binarized = set() if result["binarized_loss"] is None else {"binarized_loss"}  # None: no circuit to binarize
    assert set(intervals) == REPORTED_LOSSES - {"binarized_loss"} | binarized
    for name, (low, high) in intervals.items():
        assert low <= result[name] <= high, name
    assert len(result["test_pair_losses"]["circuit_loss"]) == result["test_pairs"]
    assert intervals == loss_intervals(result["test_pair_losses"])
    assert ctx.metrics["seed_spread"] == result["seed_spread"]


@pytest.mark.parametrize(
    "assignment, key", [("prune.seeds=0", "prune.seeds"), ("matched.tolerance=-0.01", "matched.tolerance")]
)
def test_fewer_than_one_seed_or_a_negative_tolerance_is_exit_2_naming_the_key(assignment, key):
    result = CliRunner().invoke(app, ["config", "show", "--preset", "smoke", "--set", assignment])
    assert result.exit_code == 2 and key in result.output and "Traceback" not in result.output
