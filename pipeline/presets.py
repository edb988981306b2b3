"""Named presets: partial configs laid over the defaults of `config.py`.

smoke  CI: every stage in seconds.
tiny   the default of `run full`: the whole pipeline on a 2-core laptop in minutes.
small  one GPU, or a CPU overnight.
paper  the paper's settings (8 layers, d_model 2048, n_ctx 256, the Fig. 3 L0 sweep), for a GPU cluster.
"""

from __future__ import annotations

from typing import Any

_SMOKE_MODEL = {"n_layer": 1, "d_model": 32, "n_head": 2, "d_head": 8, "n_ctx": 128}
_TINY_MODEL = {"n_layer": 2, "d_model": 128, "n_head": 8, "d_head": 16, "n_ctx": 128}
_SMALL_MODEL = {"n_layer": 4, "d_model": 512, "n_head": 32, "d_head": 16, "n_ctx": 256}
_PAPER_MODEL = {"n_layer": 8, "d_model": 2048, "n_head": 128, "d_head": 16, "n_ctx": 256}


def _train(model: dict[str, Any], steps: int, batch: int, eval_every: int, checkpoint_every: int, optim: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    # The reference code rescales every gradient to RMS 1; with Adam's eps = 0.1 the paper's "clip at 1"
    # never triggers on small models and the updates shrink 10-100x (measured: val loss 5.72 vs 3.80).
    optim = {"grad_rms_mode": "normalize", **(optim or {})}
    return {"model": model, "steps": steps, "batch_size": batch, "eval_every": eval_every, "checkpoint_every": checkpoint_every, "optim": optim, **extra}


def _dense(train: dict[str, Any]) -> dict[str, Any]:
    return {**train, "sparsity": {"enabled": False}, "optim": {**train.get("optim", {}), "lr_l0_scaling": False}}


SMOKE: dict[str, Any] = {
    "tokenize": {"vocab_size": 2048, "n_ctx": 128, "corpus": {"max_documents": 300}, "tokenizer_train_bytes": 8_000_000, "documents_per_shard": 100},
    "pretrain": {
        "train": _train(_SMOKE_MODEL, steps=20, batch=8, eval_every=10, checkpoint_every=10, eval_batches=2, sparsity={"target_l0": 0.25}),
        "variants": [{"name": "smoke"}],
    },
    "dense": {"train": _dense(_train(_SMOKE_MODEL, steps=20, batch=8, eval_every=10, checkpoint_every=10, eval_batches=2))},
    "bridges": {
        "enabled": True,
        "train": _train(_SMOKE_MODEL, steps=20, batch=8, eval_every=10, checkpoint_every=10, eval_batches=2, sparsity={"target_l0": 0.25}),
        "variants": [{"name": "smoke"}],
        "interventions": {"pairs": 8, "strengths": 5, "reference_batches": 2},
    },
    "prune": {"tasks": ["single_double_quote", "bracket_counting"], "steps": 10, "batch_pairs": 4, "eval_pairs": 16, "max_tokens": 128, "mean_cache_batches": 2},
    "tune": {"iterations": 1, "trials_per_iteration": 2, "cpus_per_trial": 0.5},
}

TINY: dict[str, Any] = {
    "tokenize": {"vocab_size": 2048, "n_ctx": 128},
    "pretrain": {
        "train": _train(_TINY_MODEL, steps=600, batch=32, eval_every=100, checkpoint_every=100, sparsity={"target_l0": 1 / 16}, optim={"lr": 1e-2}),
        "variants": [{"name": "tiny"}],
    },
    "dense": {"train": _dense(_train(_TINY_MODEL, steps=600, batch=32, eval_every=100, checkpoint_every=100, optim={"lr": 3e-3}))},
    # Off: a bridges step costs ~6.5x a sparse pretrain step at this shape (BENCHMARKS.md), past the
    # default run's time budget. `--set bridges.enabled=true` trains it against the tiny dense model.
    "bridges": {
        "enabled": False,
        "train": _train(_TINY_MODEL, steps=600, batch=32, eval_every=100, checkpoint_every=100, sparsity={"target_l0": 1 / 16}, optim={"lr": 1e-2}),
        "variants": [{"name": "tiny"}],
    },
    # The three tasks the paper reads circuits for; `--tasks all` prunes all 20 (about 7x longer).
    "prune": {
        "tasks": ["single_double_quote", "bracket_counting", "set_or_string_fixedvarname"],
        "steps": 100,
        "batch_pairs": 8,
        "eval_pairs": 64,
        "max_tokens": 128,
        "mean_cache_batches": 16,
    },
    "tune": {"iterations": 2, "trials_per_iteration": 4, "cpus_per_trial": 1.0},
}

SMALL: dict[str, Any] = {
    "tokenize": {"vocab_size": 2048, "n_ctx": 256},
    "pretrain": {
        "train": _train(_SMALL_MODEL, steps=20_000, batch=64, eval_every=500, checkpoint_every=1000, sparsity={"target_l0": 1 / 32}),
        "variants": [{"name": "small"}],
    },
    "dense": {"train": _dense(_train(_SMALL_MODEL, steps=20_000, batch=64, eval_every=500, checkpoint_every=1000, optim={"lr": 3e-3}))},
    "bridges": {"enabled": True, "train": _train(_SMALL_MODEL, steps=10_000, batch=64, eval_every=500, checkpoint_every=1000)},
    "prune": {"steps": 1000, "batch_pairs": 64, "eval_pairs": 256},
    "tune": {"iterations": 8, "trials_per_iteration": 8},
}

# Fig. 3 of the paper sweeps total nonzero parameters and activation fraction.
_PAPER_VARIANTS = [
    {"name": f"l0_{l0:g}_afrac_{afrac:g}", "target_l0": l0, "afrac": afrac}
    # 1/512 is the sparsest L0 at which d_model 2048 keeps 4 weights for each of its 8192 neurons.
    for l0 in (1 / 64, 1 / 256, 1 / 512)
    for afrac in (0.25, 0.125)
]

PAPER: dict[str, Any] = {
    "tokenize": {"vocab_size": 2048, "n_ctx": 256},
    "pretrain": {
        "train": _train(_PAPER_MODEL, steps=200_000, batch=512, eval_every=2000, checkpoint_every=2000, optim={"lr": 1.28e-2}, dtype="bfloat16"),
        "variants": _PAPER_VARIANTS,
    },
    "dense": {
        "train": _dense(
            _train({**_PAPER_MODEL, "d_model": 1024, "n_head": 64, "n_layer": 4}, steps=200_000, batch=512, eval_every=2000, checkpoint_every=2000, optim={"lr": 3e-3}, dtype="bfloat16")
        )
    },
    "bridges": {
        "enabled": True,
        "train": _train({**_PAPER_MODEL, "n_layer": 4}, steps=100_000, batch=512, eval_every=2000, checkpoint_every=2000, dtype="bfloat16"),
    },
    "prune": {"steps": 2000, "batch_pairs": 64, "eval_pairs": 512, "mean_cache_batches": 256},
    "tune": {"iterations": 32, "trials_per_iteration": 8},
}

PRESETS: dict[str, dict[str, Any]] = {"smoke": SMOKE, "tiny": TINY, "small": SMALL, "paper": PAPER}
