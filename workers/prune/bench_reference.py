"""A whole pruning trial of ours timed beside one of the public reimplementation (jacobcd52/sparse_pretrain_public).

Issue 27, item 5: is our trial fast because of what it does, or only because of how it does it? Both sides prune
the same kind of model (the `bench_setup` tiny shape, trained for seconds on the synthetic key task), on the same
task pairs, with the tiny preset's pruning settings and one torch thread, in alternating rounds (ours, theirs, ours,
theirs ...) so that a shared machine's load hits both alike.

Their code is never copied here: `--reference` names an export of their repository (`git -C <mirror> archive HEAD |
tar -x -C DIR`), whose modules are imported at run time under a private package name, without running their package
`__init__` files (which import their training stack). Their `src/pruning/tasks.py` imports `transformers` for a type
hint only; where `transformers` is not installed, a stub module with that one name stands in (`shim_transformers`).

- ours: `trial.run_trial` as CARBS runs it (mask training, ranking, coarse-to-fine bisection on the val pairs,
  calibration, test-split checks: full model, circuit, inverse, random circuit, target sweep; the loss-vs-k curve is
  the cell's, once).
- theirs: what their CARBS trial does per trial: `MaskedSparseGPT` + means, `PruningTrainer.train` for the same
  steps, then their library bisection `discretize.discretize_masks` at the same target; each probe
  (`evaluate_at_k`) keeps the top k with `keep_top_k`, a Python loop over every node with a host sync per node.
  Their task is `PairTask` below: their `generate_batch` interface over our `TaskBatch`, so both sides train on the
  same pairs (batch_pairs pairs = 2 x batch_pairs prompts a step) and every probe of theirs reads all val prompts.

Also timed alone, per probe: building the top-k mask (ours `Ranking.top_k`; theirs `get_mask_state`, `keep_top_k`,
`load_mask_state`, as `evaluate_at_k` does around its forwards).

    python -m sparsepipe.workers.prune.bench_reference --reference /tmp/x [--steps N] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import statistics
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...tasks import TaskBatch
from ..mean_cache.worker import node_means
from ..nn.gpt import GPT
from ..nn.masks import NodeLayout
from ..train.bench import describe_device, in_rounds
from .bench import timed, tiny_settings
from .bench_setup import SHAPES, BenchShape, fitted_model, key_task_data, pretraining_like_rows
from .config import PruneConfig
from .losses import by_length, two_way_loss
from .search import Ranking
from .trial import run_trial

THREADS = 1  # a trial's Ray task runs with one torch thread (tiny preset's cpus_per_trial)
PACKAGE = "sparsepipe_reference"  # the private name their modules are imported under
REFERENCE_FILES = (
    "src/config.py",
    "src/model.py",
    "src/pruning/config.py",
    "src/pruning/node_mask.py",
    "src/pruning/masked_model.py",
    "src/pruning/tasks.py",
    "src/pruning/trainer.py",
    "src/pruning/discretize.py",
)
TOP_K_REPEATS = 5  # per-probe mask building, timed over this many calls each side


class ReferenceTreeError(ValueError):
    """--reference is missing or is not an export of jacobcd52/sparse_pretrain_public."""


def check_reference(root: Path) -> Path:
    """The export's root, once every module this bench imports is there."""
    if not root.is_dir():
        raise ReferenceTreeError(f"--reference {root}: no such folder")
    missing = [name for name in REFERENCE_FILES if not (root / name).is_file()]
    if missing:
        raise ReferenceTreeError(
            f"--reference {root} is not an export of jacobcd52/sparse_pretrain_public (missing {', '.join(missing)}); "
            "make one with: git -C <mirror> archive HEAD | tar -x -C DIR"
        )
    return root


def shim_transformers() -> bool:
    """Stand in for `transformers` where it is not installed: their tasks.py imports it for a type hint only
    (`PreTrainedTokenizer`), and this bench never builds one of their tokenized tasks. True if stubbed."""
    try:
        importlib.import_module("transformers")
        return False
    except ImportError:
        stub = types.ModuleType("transformers")
        stub.PreTrainedTokenizer = type("PreTrainedTokenizer", (), {})  # type: ignore[attr-defined]
        sys.modules["transformers"] = stub
        return True


@dataclass
class Reference:
    """Their modules, imported from the export."""

    config: Any  # src/config.py: ModelConfig, SparsityConfig
    model: Any  # src/model.py: SparseGPT
    pruning_config: Any  # src/pruning/config.py: PruningConfig
    masked_model: Any  # MaskedSparseGPT
    trainer: Any  # PruningTrainer
    discretize: Any  # discretize_masks
    transformers_stubbed: bool


def import_reference(root: Path) -> Reference:
    """Import their modules as PACKAGE.src.*, with bare package objects so that no `__init__` of theirs runs."""
    root = check_reference(root)
    for name, folder in (
        (PACKAGE, root),
        (f"{PACKAGE}.src", root / "src"),
        (f"{PACKAGE}.src.pruning", root / "src/pruning"),
    ):
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    stubbed = shim_transformers()

    def load(name: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.src.{name}")

    return Reference(
        config=load("config"),
        model=load("model"),
        pruning_config=load("pruning.config"),
        masked_model=load("pruning.masked_model"),
        trainer=load("pruning.trainer"),
        discretize=load("pruning.discretize"),
        transformers_stubbed=stubbed,
    )


class PairTask:
    """Their BinaryTask interface over our TaskBatch: `generate_batch(batch_size, max_length)` returns
    (positive_ids, negative_ids, correct_tokens, incorrect_tokens, eval_positions) for batch_size prompts, both
    prompts of batch_size // 2 pairs: drawn at random with replacement (`shuffle`, as our mask training draws
    them), or the next pairs in order, wrapping around (an evaluation: a probe of n_batches(...) batches reads
    every prompt once). The negative of a prompt is its pair's other prompt; rows are trimmed to the batch's
    longest prompt (their max_length 0, dynamic padding) or right-padded to max_length. `calls` counts batches."""

    def __init__(self, batch: TaskBatch, shuffle: bool, seed: int = 0):
        self.batch = batch
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.next_pair = 0
        self.calls = 0

    def n_batches(self, batch_size: int) -> int:
        """Batches of batch_size prompts that read every prompt once."""
        return math.ceil(len(self.batch) / batch_size)

    def _pairs(self, n: int) -> Tensor:
        if self.shuffle:
            return torch.randint(self.batch.n_pairs, (n,), generator=self.generator)
        pairs = (self.next_pair + torch.arange(n)) % self.batch.n_pairs
        self.next_pair = (self.next_pair + n) % self.batch.n_pairs
        return pairs

    def generate_batch(self, batch_size: int, max_length: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"PairTask serves whole pairs: batch_size must be even, got {batch_size}")
        self.calls += 1
        part = self.batch.select(self._pairs(batch_size // 2))
        tokens = part.tokens
        if max_length > tokens.shape[1]:
            tokens = torch.nn.functional.pad(tokens, (0, max_length - tokens.shape[1]), value=part.pad_id)
        partner = torch.arange(tokens.shape[0]) ^ 1  # rows 2i and 2i + 1 are one pair's two prompts
        return tokens, tokens[partner], part.correct_ids, part.wrong_ids, part.eval_pos


def reference_model(ref: Reference, shape: BenchShape, ours: GPT) -> Any:
    """Their SparseGPT at our shape: same layers, widths, heads, context, vocab, MLP width, RMSNorm, bigram table,
    attention sinks, no positions, biases; AbsTopK on the same locations at the same fraction; no weight sparsity
    (ours is dense too: a weight mask changes values, not the cost of a dense matmul)."""
    cfg = ours.config
    model_config = ref.config.ModelConfig(
        n_layer=cfg.n_layer,
        d_model=cfg.d_model,
        n_ctx=cfg.n_ctx,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp or 4 * cfg.d_model,
        vocab_size=shape.vocab,
        use_rms_norm=cfg.norm == "rms",
        use_bigram_table=cfg.bigram_table,
        use_attention_sinks=cfg.attn_sink,
        use_positional_embeddings=cfg.pos_emb != "none",
        activation=cfg.activation,
        use_bias=cfg.bias,
        tie_embeddings=cfg.tied_embeddings,
    )
    sparsity = ref.config.SparsityConfig(
        enable_weight_sparsity=False,
        enable_activation_sparsity=cfg.afrac is not None,
        activation_topk_fraction=cfg.afrac or 1.0,
        activation_sparsity_locations=",".join(cfg.afrac_locations),
    )
    if model_config.n_heads != cfg.n_head:
        raise ValueError(f"their heads are d_model / d_head = {model_config.n_heads}, ours {cfg.n_head}")
    return ref.model.SparseGPT(model_config, sparsity)


def fit_reference(model: Any, train: TaskBatch, steps: int, seed: int = 0) -> Any:
    """Their model trained on the key task as `bench_setup.fitted_model` trains ours (Adam, lr 3e-3, 32 pairs a
    step, the two-way loss at the eval position), so that its masks, too, find a circuit that reaches the target."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = train.select(torch.randint(train.n_pairs, (32,), generator=generator))
        logits, _, _ = model(batch.tokens)
        at_eval = logits[torch.arange(len(batch)), batch.eval_pos]
        pair = at_eval.gather(1, batch.candidates).float()
        loss = two_way_loss(pair[:, 1] - pair[:, 0], batch.correct)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


def reference_settings(ref: Reference, settings: PruneConfig) -> Any:
    """Their PruningConfig with our hyperparameters: same steps, prompts a step, lr (with the same warmup), k_coef,
    init noise, weight decay, beta2, Heaviside temperature, RMS gradient clip, target; the two-way loss
    (use_binary_loss) and mean ablation over pretraining-like rows; their bisection tolerance stays theirs."""
    hyper = settings.hyper
    return ref.pruning_config.PruningConfig(
        target_loss=settings.target_loss,
        k_coef=hyper.k_coef,
        init_noise_scale=hyper.init_noise_scale,
        init_noise_bias=hyper.init_noise_bias,
        heaviside_temp=hyper.heaviside_temp,
        lr=hyper.lr,
        weight_decay=hyper.wd,
        beta2=1 - hyper.inv_beta2,
        grad_clip_norm=settings.grad_clip,
        lr_warmup_frac=hyper.lr_warmup_frac,
        num_steps=settings.steps,
        batch_size=2 * settings.batch_pairs,
        seq_length=0,
        ablation_type="mean_pretrain" if settings.ablation == "mean" else "zero",
        use_binary_loss=True,
        log_every=max(1, settings.steps),
        device="cpu",
    )


@dataclass
class ReferenceSetup:
    ref: Reference
    model: Any
    config: Any
    means: dict[str, Tensor] | None
    train: TaskBatch
    val: TaskBatch
    seed: int


def reference_means(ref: Reference, model: Any, config: Any, rows: Tensor) -> dict[str, Tensor] | None:
    """Their mean cache over the same pretraining-like rows ours is computed from (before any trial, as ours)."""
    if config.ablation_type == "zero":
        return None
    masked = ref.masked_model.MaskedSparseGPT(model, config)
    return masked.compute_mean_cache(iter([rows]), num_batches=1, show_progress=False)


def reference_trial(setup: ReferenceSetup) -> dict[str, Any]:
    """Their trial: masks + means, PruningTrainer for the steps, then discretize_masks at the target."""
    ref, config = setup.ref, setup.config
    started = time.perf_counter()
    torch.manual_seed(setup.seed)  # their masks draw their initial noise from torch's global generator
    masked = ref.masked_model.MaskedSparseGPT(setup.model, config)
    if setup.means is not None:
        masked.set_means_from_dict(setup.means)
    trainer = ref.trainer.PruningTrainer(masked, PairTask(setup.train, True, setup.seed), config, use_wandb=False)
    trainer.train(num_steps=config.num_steps, show_progress=False, histogram_every=0)
    train_s = time.perf_counter() - started
    active = masked.masks.get_total_active_nodes()
    val = PairTask(setup.val, False)
    per_probe = val.n_batches(config.batch_size)
    mark = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # it prints a line where k is 1 or the target is missed
        k, loss, _ = ref.discretize.discretize_masks(
            masked, val, config, num_eval_batches=per_probe, show_progress=False
        )
    bisect_s = time.perf_counter() - mark
    return {
        "total_s": time.perf_counter() - started,
        "train_s": train_s,
        "bisect_s": bisect_s,
        "masks_kept": k,
        "selection_loss": loss,
        "reached_target": loss <= config.target_loss + config.discretization_tolerance,
        "active_after_training": active,
        "probes": val.calls // per_probe,
        "total_nodes": masked.masks.get_total_nodes(),
    }


def reference_top_k_s(setup: ReferenceSetup, k: int) -> float:
    """Seconds their probe spends building its top-k mask (what `evaluate_at_k` does around its forwards)."""
    torch.manual_seed(setup.seed)
    masked = setup.ref.masked_model.MaskedSparseGPT(setup.model, setup.config)
    started = time.perf_counter()
    for _ in range(TOP_K_REPEATS):
        state = masked.get_mask_state()
        masked.masks.keep_top_k(k)
        masked.load_mask_state(state)
    return (time.perf_counter() - started) / TOP_K_REPEATS


def our_top_k_s(layout: NodeLayout, k: int) -> float:
    """Seconds our probe spends building its top-k mask (`Ranking.top_k`, on the ranking made once a trial)."""
    ranking = Ranking(torch.randn(layout.n_masks, generator=torch.Generator().manual_seed(0)), layout)
    started = time.perf_counter()
    for _ in range(TOP_K_REPEATS):
        ranking.top_k(k)
    return (time.perf_counter() - started) / TOP_K_REPEATS


def measure(reference: Path, steps: int | None, rounds: int) -> dict[str, Any]:
    """One warm-up trial each side (their results are reported), then `rounds` alternating rounds of whole trials."""
    ref = import_reference(reference)
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _measure(ref, steps, rounds)
    finally:
        torch.set_num_threads(previous)


def _measure(ref: Reference, steps: int | None, rounds: int) -> dict[str, Any]:
    shape = SHAPES["tiny"]
    settings = tiny_settings(**({"steps": steps} if steps is not None else {}))
    data = key_task_data(min(settings.train_pool_pairs, 2048), settings.eval_pairs, shape.vocab, settings.max_tokens)
    model = fitted_model(shape, data.train, torch.device("cpu"))
    rows = pretraining_like_rows(settings.viewer.example_rows, shape.vocab, model.config.n_ctx)
    means = node_means(model, [rows]) if settings.ablation == "mean" else None
    theirs = fit_reference(reference_model(ref, shape, model), data.train, shape.fit_steps)
    config = reference_settings(ref, settings)
    setup = ReferenceSetup(
        ref, theirs, config, reference_means(ref, theirs, config, rows), data.train, by_length(data.eval), settings.seed
    )

    def ours_trial() -> Any:
        return run_trial(model, means, data, settings.hyper, settings, settings.seed)

    first_ours, first_theirs = ours_trial(), reference_trial(setup)  # warm-up; their circuits are the ones reported
    phases: dict[str, list[float]] = {}
    ref_phases: dict[str, list[float]] = {}

    def ours() -> None:
        for name, value in ours_trial().timings.items():
            if name.endswith("_s"):
                phases.setdefault(name, []).append(value)

    def reference() -> None:
        for name, value in reference_trial(setup).items():
            if name.endswith("_s"):
                ref_phases.setdefault(name, []).append(value)

    times = in_rounds({"ours_trial_s": timed(ours), "reference_trial_s": timed(reference)}, rounds)
    layout = NodeLayout(model.config, tie_qk=settings.tie_qk_masks)
    k = max(1, first_theirs["active_after_training"] // 2)
    top_k = {"k": k, "ours_s": our_top_k_s(layout, k), "reference_s": reference_top_k_s(setup, k)}
    top_k["reference_over_ours"] = top_k["reference_s"] / top_k["ours_s"]
    our_circuit = {
        "reached_target": first_ours.reached_target,
        "masks_kept": first_ours.masks_kept,
        "active_after_training": first_ours.active_after_training,
        "full_val_probes": len(first_ours.bisection),  # besides its probes on a quarter of the val pairs
        "work": first_ours.work,  # forward passes of the trial, by kind
        "total_masks": layout.n_masks,
    }
    return summary(times, phases, ref_phases, our_circuit, first_theirs, top_k, settings, shape, ref, rounds)


def summary(
    times: dict[str, list[float]],
    phases: dict[str, list[float]],
    ref_phases: dict[str, list[float]],
    our_circuit: dict[str, Any],
    first_theirs: dict[str, Any],
    top_k: dict[str, float],
    settings: PruneConfig,
    shape: BenchShape,
    ref: Reference,
    rounds: int,
) -> dict[str, Any]:
    mean = {name: statistics.mean(values) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    ours_phases = {name: statistics.mean(values) for name, values in phases.items()}
    their_phases = {name: statistics.mean(values) for name, values in ref_phases.items()}
    return {
        "reference_over_ours": mean["reference_trial_s"] / mean["ours_trial_s"],
        "reference_over_ours_best_round": best["reference_trial_s"] / best["ours_trial_s"],
        # The parts both trials have: mask training and bisection (ours: train_s + bisect_s).
        "core_reference_over_ours": (their_phases["train_s"] + their_phases["bisect_s"])
        / (ours_phases["train_s"] + ours_phases["bisect_s"]),
        "train_reference_over_ours": their_phases["train_s"] / ours_phases["train_s"],
        "bisect_reference_over_ours": their_phases["bisect_s"] / ours_phases["bisect_s"],
        "seconds": mean,
        "seconds_best_round": best,
        "ours": {
            "phases_s": ours_phases,
            "includes": "mask training, full-model test gaps, ranking + coarse-to-fine bisection (val), "
            "calibration (LBFGS), test checks (circuit, inverse, random), target sweep",
            **our_circuit,
        },
        "reference": {
            "phases_s": their_phases,
            "includes": "MaskedSparseGPT + means, PruningTrainer.train, discretize_masks (val); no calibration, "
            "curve or test-split checks",
            **{key: value for key, value in first_theirs.items() if not key.endswith("_s")},
        },
        "top_k_per_probe": top_k,
        "transformers_stubbed": ref.transformers_stubbed,
        "shape": {**shape.model, "vocab_size": shape.vocab},
        "settings": {
            "steps": settings.steps,
            "prompts_per_step": 2 * settings.batch_pairs,
            "val_prompts": 2 * settings.eval_pairs,
            "target_loss": settings.target_loss,
            "ablation": settings.ablation,
        },
        "threads": THREADS,
        "rounds": rounds,
        "device": describe_device(torch.device("cpu")),
    }


def report(result: dict[str, Any]) -> str:
    """The summary as lines of text."""
    s, best = result["seconds"], result["seconds_best_round"]
    ours, theirs, top_k = result["ours"], result["reference"], result["top_k_per_probe"]
    lines = [
        f"trial, {result['settings']['steps']} steps, {result['rounds']} round(s), {result['threads']} thread, "
        f"{result['device']}",
        f"  ours      {s['ours_trial_s']:.2f} s (best {best['ours_trial_s']:.2f})  "
        + "  ".join(f"{k} {v:.2f}" for k, v in ours["phases_s"].items()),
        f"  reference {s['reference_trial_s']:.2f} s (best {best['reference_trial_s']:.2f})  "
        + "  ".join(f"{k} {v:.2f}" for k, v in theirs["phases_s"].items()),
        f"  reference / ours: trial {result['reference_over_ours']:.2f} (best round "
        f"{result['reference_over_ours_best_round']:.2f}), training + bisection "
        f"{result['core_reference_over_ours']:.2f}, mask training {result['train_reference_over_ours']:.2f}, "
        f"bisection {result['bisect_reference_over_ours']:.2f}",
        f"  ours: reached {ours['reached_target']}, k {ours['masks_kept']} of {ours['active_after_training']} active "
        f"({ours['total_masks']} masks), {ours['full_val_probes']} full-val probes",
        f"  reference: reached {theirs['reached_target']}, k {theirs['masks_kept']} of "
        f"{theirs['active_after_training']} active ({theirs['total_nodes']} masks), {theirs['probes']} probes",
        f"  top-k mask per probe (k {top_k['k']}): ours {top_k['ours_s'] * 1e3:.3f} ms, reference "
        f"{top_k['reference_s'] * 1e3:.1f} ms ({top_k['reference_over_ours']:.0f}x)",
    ]
    if result["transformers_stubbed"]:
        lines.append("  (transformers not installed: a stub stood in for their type-only import)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; a missing or wrong --reference exits 2 with the reason."""
    parser = argparse.ArgumentParser(prog="python -m sparsepipe.workers.prune.bench_reference", description=__doc__)
    parser.add_argument("--reference", type=Path, required=True, help="an export of jacobcd52/sparse_pretrain_public")
    parser.add_argument("--steps", type=int, default=None, help="mask steps each trial (default: the tiny preset's)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of one trial each side")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        check_reference(args.reference)
    except ReferenceTreeError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = measure(args.reference, args.steps, args.rounds)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
