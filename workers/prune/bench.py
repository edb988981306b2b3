"""`sparsepipe bench prune`: where a pruning trial's time goes, and what training trials together buys.

On a fixed model shape (the tiny preset's, 2 layers x d_model 128; without --quick also 4 x 256), a model
trained for seconds on a synthetic pair task (`bench_setup`), with the tiny preset's pruning settings, timed side
by side in rounds (every part once per round, in turn, so that the load of a shared machine hits all alike):

- fwd_bwd_s: one forward + backward of the bare model (weights' gradients) on a mask-training batch;
- mask_step_s: one mask-training step (`search.train_masks` over a few steps, per step);
- bisection_eval_s: one evaluation of a top-k circuit on the val pairs (one bisection probe);
- calibration_s: the circuit's gaps on the calibration pairs and the LBFGS fit;
- curve_s (the loss-vs-size curve with its inverse losses, `trial.loss_vs_k`), binarization_s, viewer_s (per-node
  ablation and activation examples): once per cell, on the written circuit;
- startup_s: loading the model and the means from disk, as a trial's Ray task does on a fresh worker;
- trial_s: a whole trial as CARBS runs it (`trial.run_trial`: mask training, full-model test gaps, ranking and
  bisection, calibration, test checks, target sweep; no curve, which the cell computes once), and its phases
  (`TrialResult.timings`);
- trials_one_per_task_s / trials_batched_s: `trials` trials of one CARBS iteration run one after another as
  one-trial tasks do, and trained together on a trial dimension (`trial.run_trials`), same threads.

Ratios (top level, of the tiny shape): mask_step_over_fwd_bwd; trial_over_mask_steps = trial_s / (steps x
mask_step_s), the share of a trial that is not mask training plus one; batched_trials_speedup = trials/s batched
over trials/s one per task. Each ratio is of round means; `*_best_round` of the least disturbed round.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

from ..mean_cache.means import load_means, save_means
from ..mean_cache.worker import node_means
from ..nn.gpt import load_checkpoint, save_checkpoint
from ..nn.masks import NodeLayout, ablation_values, mask_interventions
from ..train.bench import describe_device, in_rounds
from .bench_setup import SHAPES, BenchShape, fitted_model, key_task_data, pretraining_like_rows
from .config import PRESETS, PruneConfig
from .losses import by_length, candidate_gap, chunks, two_way_loss
from .masked import MaskedModel
from .node_examples import node_examples
from .search import Ranking, fit_calibration, train_masks
from .trial import ValPairs, binarized_losses, loss_vs_k, loss_without_each_node, run_trial, run_trials

MASK_STEPS_TIMED = 20  # steps of the separately timed mask training (per round)


def tiny_settings(**overrides: Any) -> PruneConfig:
    """The tiny preset's pruning settings (what `make run` prunes with)."""
    return PruneConfig.model_validate({**PRESETS["tiny"]["prune"], **overrides})


def word_tokenizer(vocab: int) -> Tokenizer:
    """Token i decodes to "t{i}": what the viewer's examples need from a tokenizer."""
    return Tokenizer(WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))


def timed(run: Callable[[], Any]) -> Callable[[], float]:
    def seconds() -> float:
        started = time.perf_counter()
        run()
        return time.perf_counter() - started

    return seconds


def bench_shape(shape: BenchShape, settings: PruneConfig, trials: int, rounds: int, device: torch.device) -> dict:
    """Every part once per round, in turn; seconds per part (round means and best rounds) and the ratios."""
    data = key_task_data(min(settings.train_pool_pairs, 2048), settings.eval_pairs, shape.vocab, settings.max_tokens)
    model = fitted_model(shape, data.train, device)
    rows = pretraining_like_rows(settings.viewer.example_rows, shape.vocab, model.config.n_ctx)
    means = node_means(model, [rows.to(device)]) if settings.ablation == "mean" else None
    layout = NodeLayout(model.config, tie_qk=settings.tie_qk_masks)
    ablation = ablation_values(layout, means, settings.ablation)
    masked = MaskedModel(model, layout, ablation)
    on_device = data.train.to(device), data.eval.to(device), data.test.to(device)
    train, evaluation, test = on_device
    hypers = [settings.hyper.model_copy(update={"lr": settings.hyper.lr * (1.25**i)}) for i in range(trials)]
    seeds = [settings.seed + i for i in range(trials)]

    # One trial first: its circuit is what the per-circuit parts measure.
    first = run_trial(model, means, data, settings.hyper, settings, settings.seed)
    circuit = layout.flatten(
        {
            n: torch.zeros(w).index_fill_(0, torch.tensor(first.kept[n], dtype=torch.long), 1.0)
            for n, w in layout.locations
        }
    ).to(device)
    ranking_k = first.masks_kept
    calibration_set = train.select(range(min(settings.eval_pairs, train.n_pairs)))
    fit = train.select(range(min(settings.binarize_pairs, train.n_pairs)))
    trainable = fitted_model(shape, data.train, device).requires_grad_(True)
    fwd_batch = train.select(range(settings.batch_pairs))
    tokenizer = word_tokenizer(shape.vocab)

    def fwd_bwd() -> None:
        logits, _ = trainable(fwd_batch.tokens, positions=fwd_batch.eval_pos)
        two_way_loss(candidate_gap(logits, fwd_batch), fwd_batch.correct).backward()

    def mask_steps() -> None:
        short = settings.model_copy(update={"steps": MASK_STEPS_TIMED})
        train_masks(masked, train, settings.hyper, short, torch.Generator().manual_seed(0))

    eval_chunks = chunks(evaluation, settings.batch_pairs)
    ranking = Ranking(torch.linspace(1, -1, layout.n_masks), layout)

    def bisection_eval() -> None:
        masked.gaps(eval_chunks, ranking.top_k(max(1, ranking_k)).to(device))

    def calibration() -> None:
        gaps = masked.gaps(chunks(calibration_set, settings.batch_pairs), circuit)
        fit_calibration(gaps, calibration_set.correct, settings.calibration_steps)

    val = ValPairs.of(by_length(evaluation), settings)

    def curve() -> None:
        loss_vs_k(masked, first.ranking, val, settings)

    def binarization() -> None:
        if first.reached_target:
            binarized_losses(masked, circuit, fit, evaluation, test, settings)

    def viewer() -> None:
        if 0 < first.nodes <= settings.viewer.ablate_each_max_nodes:
            loss_without_each_node(masked, test, circuit, settings.batch_pairs, settings.loss_reduction)
        pairs = test.select(range(min(settings.viewer.task_pairs, test.n_pairs)))
        interventions = mask_interventions(layout, circuit, masked.ablation)
        node_examples(model, rows.to(device), pairs, first.kept, interventions, tokenizer, settings.viewer)

    folder = Path(tempfile.mkdtemp(prefix="sparsepipe-bench-prune-"))
    save_checkpoint(model, folder / "checkpoint")
    if means is not None:
        (folder / "means").mkdir()
        save_means(means, folder / "means")

    def startup() -> None:
        load_checkpoint(folder / "checkpoint", device=device)
        if means is not None:
            load_means(folder / "means")

    phases: dict[str, list[float]] = {}

    def trial() -> None:
        result = run_trial(model, means, data, settings.hyper, settings, settings.seed)
        for name, value in result.timings.items():
            if name.endswith("_s"):
                phases.setdefault(name, []).append(value)

    def one_per_task() -> None:
        for hyper, seed in zip(hypers, seeds):
            run_trial(model, means, data, hyper, settings, seed)

    def batched() -> None:
        run_trials(model, means, data, hypers, settings, seeds)

    fwd_bwd()  # warm-up
    mask_steps()
    try:
        times = in_rounds(
            {
                "fwd_bwd_s": timed(fwd_bwd),
                "mask_step_s": lambda: timed(mask_steps)() / MASK_STEPS_TIMED,
                "bisection_eval_s": timed(bisection_eval),
                "calibration_s": timed(calibration),
                "curve_s": timed(curve),
                "binarization_s": timed(binarization),
                "viewer_s": timed(viewer),
                "startup_s": timed(startup),
                "trial_s": timed(trial),
                "trials_one_per_task_s": timed(one_per_task),
                "trials_batched_s": timed(batched),
            },
            rounds,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    mean = {name: statistics.mean(values) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    return {
        "seconds": mean,
        "seconds_best_round": best,
        "trial_phases_s": {name: statistics.mean(values) for name, values in phases.items()},
        "mask_step_over_fwd_bwd": mean["mask_step_s"] / mean["fwd_bwd_s"],
        "trial_over_mask_steps": mean["trial_s"] / (settings.steps * mean["mask_step_s"]),
        "batched_trials_speedup": mean["trials_one_per_task_s"] / mean["trials_batched_s"],
        "batched_trials_speedup_best_round": best["trials_one_per_task_s"] / best["trials_batched_s"],
        "circuit": {"reached_target": first.reached_target, "nodes": first.nodes, "masks_kept": first.masks_kept},
        "trial_work": first.work,
        "shape": {**shape.model, "vocab_size": shape.vocab},
        "settings": {
            "steps": settings.steps,
            "batch_pairs": settings.batch_pairs,
            "eval_pairs": settings.eval_pairs,
            "max_tokens": settings.max_tokens,
            "ablation": settings.ablation,
            "trials": trials,
        },
        "rounds": rounds,
    }


def measure(quick: bool, shapes: tuple[str, ...] | None = None, settings: PruneConfig | None = None) -> dict[str, Any]:
    """`sparsepipe bench prune`: the tiny shape (and, without `quick`, a larger one), the tiny preset's settings and
    its CARBS iteration of 4 trials; the top-level ratios are the first shape's."""
    device = torch.device("cpu")
    settings = settings or tiny_settings()
    tune = PRESETS["tiny"]["tune"]
    trials = tune["trials_per_iteration"]
    names = shapes or (("tiny",) if quick else ("tiny", "larger"))
    rounds = 1 if quick else 3
    previous = torch.get_num_threads()
    torch.set_num_threads(int(tune["cpus_per_trial"]))  # the threads a trial's Ray task runs with
    try:
        by_shape = {name: bench_shape(SHAPES[name], settings, trials, rounds, device) for name in names}
    finally:
        torch.set_num_threads(previous)
    first = by_shape[names[0]]
    return {
        "mask_step_over_fwd_bwd": first["mask_step_over_fwd_bwd"],
        "trial_over_mask_steps": first["trial_over_mask_steps"],
        "batched_trials_speedup": first["batched_trials_speedup"],
        "phases_s": {**first["seconds"], **{f"trial.{k}": v for k, v in first["trial_phases_s"].items()}},
        "shapes": by_shape,
        "device": describe_device(device),
        "threads": int(tune["cpus_per_trial"]),
    }
