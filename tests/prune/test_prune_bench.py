"""`sparsepipe bench prune` on a toy shape and a few steps: every part is timed and the ratios are consistent."""

from __future__ import annotations

import math

import torch

from sparsepipe.workers.prune.bench import bench_shape, tiny_settings
from sparsepipe.workers.prune.bench_setup import BenchShape

TOY = BenchShape("toy", {"n_layer": 1, "d_model": 32, "n_head": 2, "d_head": 8, "n_ctx": 32}, 64, fit_steps=10)


def test_bench_times_every_part_and_derives_the_ratios():
    settings = tiny_settings(
        steps=6, eval_pairs=8, train_pool_pairs=32, max_tokens=32, curve_points=2, binarize_steps=2
    )
    result = bench_shape(TOY, settings, trials=2, rounds=1, device=torch.device("cpu"))
    seconds = result["seconds"]
    assert set(seconds) == {
        "fwd_bwd_s",
        "mask_step_s",
        "bisection_eval_s",
        "calibration_s",
        "curve_s",
        "binarization_s",
        "viewer_s",
        "startup_s",
        "trial_s",
        "trials_one_per_task_s",
        "trials_batched_s",
    }
    assert all(value >= 0 and math.isfinite(value) for value in seconds.values())
    assert result["trial_over_mask_steps"] == seconds["trial_s"] / (6 * seconds["mask_step_s"])
    assert result["batched_trials_speedup"] == seconds["trials_one_per_task_s"] / seconds["trials_batched_s"]
    assert result["mask_step_over_fwd_bwd"] == seconds["mask_step_s"] / seconds["fwd_bwd_s"]
    assert {"train_s", "bisect_s", "calibrate_s", "checks_s", "total_s"} <= set(result["trial_phases_s"])
    assert "curve_s" not in result["trial_phases_s"]  # a CARBS trial has no curve: the cell's curve_s above
    assert result["settings"]["trials"] == 2 and result["trial_work"]["forwards"] > 6
