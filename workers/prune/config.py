"""The prune stage's settings (pruning, and CARBS tuning of it), and their values in each preset."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..stage import StrictModel


class PruneHyperparams(StrictModel):
    """The eight hyperparameters CARBS tunes; defaults are the paper's Table 2 centres."""

    k_coef: float = Field(1e-4, gt=0)
    init_noise_scale: float = Field(1e-2, gt=0)
    init_noise_bias: float = 1e-1
    wd: float = Field(1e-3, ge=0)
    lr: float = Field(3e-3, gt=0)
    inv_beta2: float = Field(5e-2, gt=0, lt=1)
    lr_warmup_frac: float = Field(5e-2, ge=0, lt=1)
    heaviside_temp: float = Field(1.0, gt=0)


class ViewerConfig(StrictModel):
    """What a circuit page shows beside the graph; computed by the prune stage and stored in circuit.json."""

    examples: int = Field(
        20, ge=0, description="Top and bottom activating pretraining contexts shown per node (each side); 0 skips them."
    )
    example_rows: int = Field(
        64, ge=1, description="Pretraining rows scanned for them: the first rows of the tokenized corpus's val split."
    )
    context_before: int = Field(12, ge=0, description="Tokens shown before an example's token.")
    context_after: int = Field(3, ge=0, description="Tokens shown after it.")
    task_pairs: int = Field(
        4, ge=0, description="Test pairs on whose two prompts each node's activation (in the circuit) is shown."
    )
    max_nodes: int = Field(
        512, ge=0, description="Circuits with more kept nodes than this get no activation examples (page size)."
    )
    ablate_each_max_nodes: int = Field(
        64,
        ge=0,
        description="Circuits with at most this many nodes also get the test loss with each node removed in turn.",
    )


# Keys that moved to the mean_cache section, so an old config gets told where they went.
MOVED_TO_MEAN_CACHE = {"mean_cache_batches": "batches", "mean_cache_batch_size": "batch_size"}


class PruneConfig(StrictModel):
    tasks: list[str] = Field(default_factory=lambda: ["all"], description="Task names or globs; 'all' for every task.")
    checkpoints: list[str] = Field(
        default_factory=lambda: ["all"],
        description=(
            "Which models to prune: 'all', stage names (pretrain, dense, bridges) or globs over cell "
            "names (pretrain/base)."
        ),
    )
    controls: list[Literal["random_init", "flipped", "shuffled"]] = Field(
        default_factory=list,
        description=(
            "Faithfulness controls pruned beside the circuits (README, 'Controls'): 'random_init' prunes a "
            "never-trained twin of every pruned pretrain and dense checkpoint (stage random_init) on the "
            "control_tasks; 'flipped' and 'shuffled' prune every trained checkpoint on the control_tasks' twins "
            "<task>__flipped (the other candidate always correct) and <task>__shuffled (answers a pseudo-random "
            "function of the pair)."
        ),
    )
    control_tasks: list[str] = Field(
        default_factory=lambda: ["all"],
        description="Which of the pruned tasks (names or globs; 'all' for every one) the controls run on.",
    )
    target_loss: float = Field(
        0.15, gt=0, description="The target loss CARBS tunes at and the circuit page shows (always among `targets`)."
    )
    targets: list[float] = Field(
        default_factory=lambda: [0.15],
        description=(
            "Target losses of the loss sweep (paper Fig. 2): one mask training, then one bisection per target, "
            "giving one circuit per (checkpoint, task, target); target_loss is added when missing."
        ),
    )
    loss_reduction: Literal["mean", "pair_sum"] = Field(
        "mean",
        description=(
            "The task loss the target and every reported loss use: 'mean' over a pair's two prompts, or their "
            "'pair_sum' (the reference release's per-pair sum, twice as large: a stricter target at the same "
            "target_loss)."
        ),
    )
    steps: int = Field(2000, ge=1)
    batch_pairs: int = Field(64, ge=1)
    eval_pairs: int = Field(
        256,
        ge=1,
        description="Pairs in each fixed evaluation set: "
        "val (bisection, CARBS selection) and test (every reported loss).",
    )
    max_tokens: int = Field(256, ge=8)
    ablation: Literal["mean", "zero", "resample"] = Field(
        "mean",
        description=(
            "What a deleted node is frozen at: its pretraining 'mean' (the paper), 'zero', or 'resample': its "
            "activation on another pretraining context, one context per batch (`resample.py`). Every written "
            "circuit is also scored under all three, without retraining its masks (result.json ablation_losses)."
        ),
    )
    resample_contexts: int = Field(
        16, ge=1, description="Pretraining contexts (val rows) whose activations resample ablation draws from."
    )
    tie_qk_masks: bool = False
    grad_clip: float = Field(1.0, gt=0)
    calibration_steps: int = Field(16, ge=0)
    hyper: PruneHyperparams = Field(default_factory=PruneHyperparams)
    train_pool_pairs: int = Field(
        2048, ge=1, description="Pairs generated from the task's train split; each step samples batch_pairs of them."
    )
    curve_points: int = Field(
        12, ge=0, description="Log-spaced circuit sizes at which the loss-vs-size curve is evaluated; 0 skips it."
    )
    viewer: ViewerConfig = Field(default_factory=ViewerConfig)
    binarize_pairs: int = Field(
        16,
        ge=0,
        description="Train pairs the step functions of the binarized circuit are fitted on (App. C); 0 skips it.",
    )
    binarize_steps: int = Field(
        200,
        ge=0,
        description=(
            "AdamW steps refining every kept node's step levels l, r after their initialisation, through psi_t "
            "with t annealed as (1 - progress)^5 (App. C); each is a forward and backward pass of the "
            "binarize_pairs. 0 keeps the initialisation."
        ),
    )
    binarize_lr: float = Field(1e-2, gt=0, description="Learning rate of that refinement (levels in activation units).")
    trials_per_task: int = Field(
        1,
        ge=1,
        description=(
            "CARBS trials of one iteration run in one Ray task, their masks trained together in one batched "
            "forward per step (same circuits as one trial per task, fewer and larger model calls); an iteration "
            "of more trials is split into tasks a cluster can spread over nodes. 1 (default: on the CPU it was not "
            "measured faster, BENCHMARKS.md) is a task per trial; try 8 on a GPU."
        ),
    )
    seed: int = 0
    seeds: int = Field(
        1,
        ge=1,
        description="Mask trainings at the chosen hyperparameters, each with its own seed: the written circuit's "
        "and seeds - 1 repeats; result.json gives each and the median and range of nodes, edges and test loss.",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved = [f"prune.{old} is now mean_cache.{new}" for old, new in MOVED_TO_MEAN_CACHE.items() if old in data]
            if moved:
                raise ValueError("; ".join(moved) + " (the mean cache has its own section)")
        return data

    @field_validator("targets")
    @classmethod
    def _positive_targets(cls, targets: list[float]) -> list[float]:
        if any(not t > 0 for t in targets):
            raise ValueError(f"every prune.targets value must be > 0, got {targets}")
        return targets

    @property
    def target_sweep(self) -> list[float]:
        """The target losses swept, ascending: `targets` and `target_loss`."""
        return sorted(set(self.targets) | {self.target_loss})


class TuneConfig(StrictModel):
    enabled: bool = True
    iterations: int = Field(32, ge=1)
    trials_per_iteration: int = Field(8, ge=1)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    seed: int = 0
    initial_search_radius: float = Field(0.3, gt=0)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "prune": {
            "tasks": ["single_double_quote", "bracket_counting"],
            # Every control, on one task: the cells a faithfulness table needs, at a third of the cost.
            "controls": ["random_init", "flipped", "shuffled"],
            "control_tasks": ["single_double_quote"],
            "resample_contexts": 4,
            "steps": 10,
            "batch_pairs": 4,
            "eval_pairs": 16,
            "max_tokens": 128,
            "viewer": {"example_rows": 16},
            "binarize_steps": 4,
            "seeds": 2,
        },
        "tune": {"iterations": 1, "trials_per_iteration": 2, "cpus_per_trial": 0.5},
    },
    "tiny": {
        # The three tasks the paper reads circuits for, plus the tasks both tiny models solve best of all 20
        # (`sparsepipe tasks eval`, test pairs; table in BENCHMARKS.md): var_if and while_return_true.
        # `--tasks all` prunes all 20.
        "prune": {
            "tasks": [
                "single_double_quote",
                "bracket_counting",
                "set_or_string_fixedvarname",
                "var_if",
                "while_return_true",
            ],
            # The sparse model and its dense checkpoint at matched pretraining loss (the Fig. 2 headline). The
            # dense run's final model (0.5 nats better) still trains, for the bridges; `--checkpoints all` prunes
            # it too, for the unmatched comparison (5 cells more).
            "checkpoints": ["pretrain", "matched_dense"],
            # Every control on the task whose circuit the paper reads first and on var_if, the one task both tiny
            # models perform at the target (BENCHMARKS.md, "The verdict"): a circuit is trusted only with its
            # controls run. 12 more cells (random-init sparse and dense, the flipped and shuffled twins on both),
            # each one mask seed and no binarization (`stage.control_settings`).
            # `--set 'prune.control_tasks=["all"]'` runs them on all five (30 cells).
            "controls": ["random_init", "flipped", "shuffled"],
            "control_tasks": ["single_double_quote", "var_if"],
            # Mask training must run long enough for tau to cross zero: tau starts at ~0.1 and Adam moves it
            # by about lr per step. Measured on the tiny sparse model, single_double_quote: 100 steps at lr 3e-3
            # keep 1191 nodes (10,160 edges) and miss the target; 300 steps at lr 1e-2 keep 83 (131 edges).
            "steps": 300,
            "hyper": {"lr": 1e-2},
            "batch_pairs": 8,
            "eval_pairs": 128,
            "max_tokens": 64,
            # Half the default refinement steps at twice the lr (Adam moves a level by about lr per step). Measured
            # on the g08 store's sparse single_double_quote circuit (29 nodes, 16 fit pairs, 128 test pairs):
            # binarized test loss 0.393 initialised, 0.091 refined (0.090 with the default 200 steps at 1e-2).
            "binarize_steps": 100,
            "binarize_lr": 2e-2,
            # Error bars: the chosen circuit's mask training again with two more seeds (2 trials more per cell
            # beside CARBS's 8).
            "seeds": 3,
        },
        "tune": {"iterations": 2, "trials_per_iteration": 4, "cpus_per_trial": 1.0},
    },
    "small": {
        "prune": {
            "steps": 1000,
            "batch_pairs": 64,
            "eval_pairs": 256,
            "controls": ["random_init", "flipped", "shuffled"],
        },
        # Trials on the GPU, four to one (about 8 GB each at these shapes by `plan --estimate`); where no GPU
        # is schedulable they run on CPU cores.
        "tune": {"iterations": 8, "trials_per_iteration": 8, "gpus_per_trial": 0.25},
    },
    "paper": {
        "prune": {
            "steps": 2000,
            "batch_pairs": 64,
            "eval_pairs": 512,
            "controls": ["random_init", "flipped", "shuffled"],
            # Fig. 2's sweep of target task losses (one mask training per cell, one bisection per target).
            "targets": [0.05, 0.1, 0.15, 0.2, 0.3],
        },
        # One GPU per trial: at d_model 2048 a trial's activations alone are ~60 GB (`plan --estimate`).
        "tune": {"iterations": 32, "trials_per_iteration": 8, "gpus_per_trial": 1.0},
    },
}
