"""A preset at its real shapes on this machine, stage by stage, with each stage's peak memory.

    python -m sparsepipe.infra.real_shapes small [--store DIR] [--set KEY=VALUE ...]

Runs the preset's pipeline with its real model shapes, context length and vocabulary, and only the step
counts, pair counts and CARBS budget cut (CUT below), plus a 16 MB corpus: the default corpus is every
.py file of the running Python, hours of BPE work on a laptop that says nothing about the shapes. Each
stage runs in a process of its own, in process (pipeline/inprocess.py: no Ray), under an address-space cap
of --cap-gb (so a cell too large for the machine fails in its own process instead of waking the kernel's
OOM killer), and prints one JSON line: its cells, failures, seconds and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

STAGES = ("tokenize", "pretrain", "dense", "bridges", "mean_cache", "prune", "report")
CUT = [
    "tokenize.corpus.max_bytes=16000000",
    *(
        f"{section}.train.{key}={value}"
        for section, steps in (("pretrain", 2), ("dense", 2), ("bridges", 1))
        for key, value in (("steps", steps), ("eval_every", steps), ("eval_batches", 1), ("checkpoint_every", steps))
    ),
    'prune.tasks=["single_double_quote"]',
    "prune.steps=2",
    "prune.batch_pairs=4",
    "prune.eval_pairs=8",
    "prune.train_pool_pairs=16",
    "mean_cache.batches=1",
    "mean_cache.batch_size=4",
    "prune.binarize_pairs=2",
    "prune.binarize_steps=2",
    "prune.curve_points=2",
    "prune.calibration_steps=2",
    "tune.iterations=1",
    "tune.trials_per_iteration=1",
    "bridges.interventions.pairs=4",
    # A circuit after 2 mask steps is the whole model: 4,096 read nodes at small, each a val pass to rank (hours here).
    "bridges.interventions.rank_max_nodes=16",
]


def run_stage(preset: str, store: str, stage: str, assignments: list[str]) -> dict:
    """One stage (its upstream committed) in this process; what it ran and its peak memory."""
    from ..pipeline.config import resolve_config
    from ..pipeline.console import registry
    from ..pipeline.inprocess import run_in_process
    from ..pipeline.store import StoreSpec

    config = resolve_config(preset, assignments=assignments, store=store)
    started = time.time()
    report = run_in_process(registry(), StoreSpec(store).open(), config, [stage], set())
    ran = [o for o in report.outcomes if o.plan.status != "HIT" and o.plan.cell.stage == stage]
    return {
        "stage": stage,
        "cells": len(ran),
        "failed": [f"{o.plan.cell.ref}: {o.error or o.skipped_because}" for o in report.failed],
        "seconds": round(time.time() - started, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),  # KiB on Linux
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset")
    parser.add_argument("--store", default="/tmp/sparsepipe-real-shapes")
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--cap-gb", type=float, default=20.0)
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # the child process: run this one stage
    args = parser.parse_args()
    assignments = CUT + args.assignments
    if args.stage:
        resource.setrlimit(resource.RLIMIT_AS, (int(args.cap_gb * 1e9),) * 2)
        print(json.dumps(run_stage(args.preset, args.store, args.stage, assignments)), flush=True)
        return
    failed = False
    for stage in STAGES:
        command = [sys.executable, "-m", "sparsepipe.infra.real_shapes", args.preset, "--store", args.store]
        command += [f"--set={a}" for a in args.assignments] + ["--cap-gb", str(args.cap_gb), "--stage", stage]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if done.returncode == 0 and lines else None
        if result is None:
            result = {"stage": stage, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        print(json.dumps(result), flush=True)
        failed = failed or "error" in result or bool(result.get("failed"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
