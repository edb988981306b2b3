"""Configuration: one pydantic model per stage, one pipeline model over them, named presets.

Sources, lowest to highest priority: preset < config file (YAML or TOML) <
environment (`SPARSEPIPE_` prefix, `__` for nesting) < `--set a.b=value`.
Workers import the stage models from here and nothing else from `pipeline/`.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .presets import PRESETS


class StrictModel(BaseModel):
    """Unknown keys are errors, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- data


class CorpusConfig(StrictModel):
    paths: list[str] = Field(
        default_factory=list,
        description="Folders, globs, files, .jsonl/.parquet with a text column, local or s3://. "
        "Empty: the .py files of the running interpreter's standard library.",
    )
    text_column: str = "text"
    max_documents: int | None = Field(None, ge=1, description="Keep at most this many documents (after dedup), for quick runs.")


class TokenizeConfig(StrictModel):
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    vocab_size: int = Field(2048, ge=260, le=65535)
    n_ctx: int = Field(256, ge=8, description="Rows hold n_ctx + 1 tokens (inputs and shifted targets).")
    val_fraction: float = Field(0.02, gt=0, lt=0.5)
    tokenizer_train_bytes: int = Field(64_000_000, ge=10_000, description="Corpus bytes sampled to train the BPE.")
    documents_per_shard: int = Field(2000, ge=1, description="A shard holds at most this many documents ...")
    shard_bytes: int = Field(2_000_000, ge=1000, description="... or about this many bytes of text: the unit of parallel encoding and of resume.")
    seed: int = 0


# -------------------------------------------------------------------------- model

NodeLocation = Literal["attn_in", "attn_q", "attn_k", "attn_v", "attn_out", "mlp_in", "mlp_neuron", "mlp_out"]
ALL_NODE_LOCATIONS: tuple[str, ...] = ("attn_in", "attn_q", "attn_k", "attn_v", "attn_out", "mlp_in", "mlp_neuron", "mlp_out")


class ModelConfig(StrictModel):
    n_layer: int = Field(2, ge=1)
    d_model: int = Field(128, ge=4)
    n_head: int = Field(8, ge=1)
    d_head: int = Field(16, ge=1)
    d_mlp: int | None = Field(None, ge=1, description="Defaults to 4 * d_model.")
    n_ctx: int = Field(256, ge=8)
    vocab_size: int | None = Field(None, description="Taken from the tokenizer when None.")
    bigram_table: bool = True
    attn_sink: bool = True
    pos_emb: Literal["none", "learned"] = "none"
    afrac: float | None = Field(0.25, gt=0, le=1, description="AbsTopK keeps afrac of each node location; None disables.")
    afrac_locations: list[NodeLocation] = Field(default_factory=lambda: list(ALL_NODE_LOCATIONS))
    activation: Literal["gelu", "relu"] = "gelu"
    norm_eps: float = 1e-6
    init_std: float = 0.02

    @property
    def mlp_width(self) -> int:
        return self.d_mlp or 4 * self.d_model


# ----------------------------------------------------------------------- training


class SparsityConfig(StrictModel):
    enabled: bool = True
    target_l0: float = Field(1 / 64, gt=0, le=1, description="Nonzero fraction of every weight matrix at the end of annealing.")
    embed_l0: float | None = Field(None, gt=0, le=1, description="Nonzero fraction of embedding/unembedding; None: same as target_l0 * 4.")
    bias_l0: float | None = Field(None, gt=0, le=1, description="Nonzero fraction of biases; None: same as the embedding fraction (paper: all biases sparse); 1 keeps them dense (reference code).")
    anneal_start_frac: float = Field(0.0, ge=0, lt=1)
    anneal_end_frac: float = Field(0.5, gt=0, le=1, description="L0 reaches its target at this fraction of training.")
    anneal: Literal["linear", "exp"] = "linear"
    min_alive_per_neuron: int = Field(4, ge=0, description="Nonzero weights kept per neuron / attention channel, along the neuron axis.")

    @model_validator(mode="after")
    def _ordered(self) -> "SparsityConfig":
        if self.anneal_end_frac <= self.anneal_start_frac:
            raise ValueError("sparsity.anneal_end_frac must be greater than sparsity.anneal_start_frac")
        return self


class OptimConfig(StrictModel):
    lr: float = Field(1e-2, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    warmup_frac: float = Field(0.01, ge=0, lt=1)
    lr_l0_scaling: bool = Field(True, description="Multiply lr by 1/sqrt(current L0 fraction) (the paper's sharkfin).")
    grad_clip_rms: float | None = Field(1.0, gt=0, description="Clip the global gradient RMS to this value; None disables.")
    grad_rms_mode: Literal["clip", "normalize"] = Field(
        "clip", description="clip: scale gradients down when their RMS exceeds grad_clip_rms (paper); normalize: always scale to it (reference code)."
    )
    weight_decay_mode: Literal["adamw", "after_topk"] = Field(
        "adamw", description="adamw: decoupled AdamW decay (paper); after_topk: Adam, then p -= lr*wd*p after the weight top-k (reference code)."
    )


class TrainConfig(StrictModel):
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    sparsity: SparsityConfig = Field(default_factory=SparsityConfig)
    batch_size: int = Field(32, ge=1)
    steps: int = Field(1000, ge=1)
    eval_every: int = Field(100, ge=1)
    eval_batches: int = Field(8, ge=1)
    checkpoint_every: int = Field(200, ge=1)
    dtype: Literal["float32", "bfloat16"] = "float32"
    seed: int = 0


class ModelVariant(StrictModel):
    """One cell of the pretrain sweep: a name and the fields it changes."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    d_model: int | None = None
    n_layer: int | None = None
    target_l0: float | None = Field(None, gt=0, le=1)
    afrac: float | None = Field(None, gt=0, le=1)
    lr: float | None = Field(None, gt=0)


class PretrainConfig(StrictModel):
    train: TrainConfig = Field(default_factory=TrainConfig)
    variants: list[ModelVariant] = Field(default_factory=lambda: [ModelVariant(name="base")])

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[ModelVariant]) -> list[ModelVariant]:
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if not variants:
            raise ValueError("pretrain.variants needs at least one variant")
        return variants

    def variant_train_config(self, variant: ModelVariant) -> TrainConfig:
        """The full training config of one sweep cell."""
        data = self.train.model_dump()
        for field in ("d_model", "n_layer", "afrac"):
            if getattr(variant, field) is not None:
                data["model"][field] = getattr(variant, field)
        if variant.target_l0 is not None:
            data["sparsity"]["target_l0"] = variant.target_l0
        if variant.lr is not None:
            data["optim"]["lr"] = variant.lr
        return TrainConfig.model_validate(data)


class DenseConfig(StrictModel):
    enabled: bool = True
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(sparsity=SparsityConfig(enabled=False), optim=OptimConfig(lr_l0_scaling=False))
    )

    @field_validator("train")
    @classmethod
    def _dense(cls, train: TrainConfig) -> TrainConfig:
        if train.sparsity.enabled:
            raise ValueError("dense.train.sparsity.enabled must be false: the dense baseline has no weight sparsity")
        return train


class BridgesConfig(StrictModel):
    enabled: bool = False
    train: TrainConfig = Field(default_factory=TrainConfig)
    encoder_afrac: float = Field(0.25, gt=0, le=1)
    coef_ce: float = Field(1.0, ge=0)
    coef_kl: float = Field(1.0, ge=0)
    coef_nmse: float = Field(1.0, ge=0)
    coef_hybrid_kl: float = Field(1.0, ge=0)


# ------------------------------------------------------------------------ pruning


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


class PruneConfig(StrictModel):
    tasks: list[str] = Field(default_factory=lambda: ["all"], description="Task names or globs; 'all' for every task.")
    checkpoints: list[str] = Field(
        default_factory=lambda: ["all"],
        description="Which models to prune: 'all', stage names (pretrain, dense, bridges) or globs over cell names (pretrain/base).",
    )
    target_loss: float = Field(0.15, gt=0)
    steps: int = Field(2000, ge=1)
    batch_pairs: int = Field(64, ge=1)
    eval_pairs: int = Field(256, ge=1, description="Fixed evaluation set for bisection and faithfulness checks.")
    max_tokens: int = Field(256, ge=8)
    ablation: Literal["mean", "zero"] = "mean"
    tie_qk_masks: bool = False
    grad_clip: float = Field(1.0, gt=0)
    calibration_steps: int = Field(16, ge=0)
    hyper: PruneHyperparams = Field(default_factory=PruneHyperparams)
    mean_cache_batches: int = Field(32, ge=1, description="Pretraining batches averaged for the mean-ablation cache.")
    mean_cache_batch_size: int = Field(32, ge=1, description="Sequences per mean-cache batch (all their positions are averaged).")
    train_pool_pairs: int = Field(2048, ge=1, description="Pairs generated from the task's train split; each step samples batch_pairs of them.")
    curve_points: int = Field(12, ge=0, description="Log-spaced circuit sizes at which the loss-vs-size curve is evaluated; 0 skips it.")
    seed: int = 0


class TuneConfig(StrictModel):
    enabled: bool = True
    iterations: int = Field(32, ge=1)
    trials_per_iteration: int = Field(8, ge=1)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    seed: int = 0
    initial_search_radius: float = Field(0.3, gt=0)


# ----------------------------------------------------------------- run settings


class ReportConfig(StrictModel):
    enabled: bool = True


class ExecutionConfig(StrictModel):
    """Where and how to run. Not part of any cache key."""

    address: str | None = Field(None, description="Ray cluster address for --cluster; None: RAY_ADDRESS.")
    connect_timeout_s: float = Field(30.0, gt=0)
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the private local Ray instance; None: all.")
    object_store_mb: int = Field(256, ge=75)
    cpus_per_trainer: float = Field(1.0, gt=0, description="CPUs per training cell (torch threads follow it).")
    gpus_per_trainer: float = Field(1.0, ge=0, description="GPUs asked per training cell when the cluster has GPUs.")
    max_concurrent_cells: int = Field(4, ge=1, description="Cells of one matrix stage in flight at once (each holds a model in memory).")
    max_retries: int = Field(2, ge=0)
    store_retry_s: float = Field(180.0, ge=0, description="Seconds a store operation retries transient errors (connection refused, timeouts, 5xx) before the cell fails.")


class S3Config(StrictModel):
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; None: AWS_ENDPOINT_URL or AWS.")
    region: str | None = None


class PipelineConfig(StrictModel):
    preset: str = "tiny"
    store: str = Field("./artifacts", description="Artifact store: a local folder or s3://bucket/prefix.")
    s3: S3Config = Field(default_factory=S3Config)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    dense: DenseConfig = Field(default_factory=DenseConfig)
    bridges: BridgesConfig = Field(default_factory=BridgesConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)


# ---------------------------------------------------------------------- loading

ENV_PREFIX = "SPARSEPIPE_"
# Variables with our prefix that are switches of the program, not config keys (README, "Configuration").
ENV_SWITCHES = {
    "SPARSEPIPE_KERNELS": "kernel path: auto, reference or triton",
    "SPARSEPIPE_PRESET": "the preset when --preset is not given",
    "SPARSEPIPE_CONFIG": "the config file when --config is not given",
    "SPARSEPIPE_CACHE": "where S3 artifacts are cached locally (default ~/.cache/sparsepipe)",
    "SPARSEPIPE_RAY_LOGS": "non-empty: show Ray worker logs",
}
_ENV_NOT_CONFIG = set(ENV_SWITCHES)


class ConfigError(ValueError):
    """A bad key or value in any config source; the message names the key and the source."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _parse_scalar(text: str) -> Any:
    """`--set`/env values: JSON when it parses (numbers, booleans, lists), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "null"):
            return None
        return text


def load_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass a .yaml, .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml", ".json"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: use .yaml, .yml, .toml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"config file {path} does not parse: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_CONFIG or name.startswith("SPARSEPIPE_TEST_"):
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        _set_path(data, dotted, _parse_scalar(value))
    return data


def set_overrides(assignments: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set pretrain.train.steps=100")
        key, value = assignment.split("=", 1)
        _set_path(data, key.strip(), _parse_scalar(value))
    return data


def _describe(error: ValidationError, source_of: dict[str, str]) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        source = next((s for prefix, s in source_of.items() if key == prefix or key.startswith(prefix + ".")), "")
        where = f" (from {source})" if source else ""
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown config key {key!r}{where}; `sparsepipe config show` lists the valid keys")
        else:
            lines.append(f"invalid value for {key!r}{where}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def _flatten_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, dict):
            keys.extend(_flatten_keys(value, dotted + "."))
    return keys


def resolve_config(
    preset: str | None = None,
    config_file: Path | None = None,
    assignments: list[str] | None = None,
    environ: dict[str, str] | None = None,
    store: str | None = None,
) -> PipelineConfig:
    """Merge every source in priority order and validate once, naming the offending key."""
    environ = dict(os.environ if environ is None else environ)
    preset = preset or environ.get("SPARSEPIPE_PRESET") or "tiny"
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if config_file is None and environ.get("SPARSEPIPE_CONFIG"):
        config_file = Path(environ["SPARSEPIPE_CONFIG"])
    layers: list[tuple[str, dict[str, Any]]] = [(f"preset {preset}", PRESETS[preset])]
    if config_file is not None:
        layers.append((f"config file {config_file}", load_config_file(Path(config_file))))
    layers.append(("environment", env_overrides(environ)))
    layers.append(("--set", set_overrides(assignments or [])))
    if store is not None:
        layers.append(("--store", {"store": store}))
    merged: dict[str, Any] = {}
    source_of: dict[str, str] = {}
    for name, layer in layers:
        merged = deep_merge(merged, layer)
        for key in _flatten_keys(layer):
            source_of[key] = name
    merged["preset"] = preset
    # Longest key first, so the most specific source is named.
    source_of = dict(sorted(source_of.items(), key=lambda kv: -len(kv[0])))
    try:
        resolved = PipelineConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_describe(error, source_of)) from None
    from .config_checks import cross_stage_problems

    problems = cross_stage_problems(resolved)
    if problems:
        raise ConfigError("\n".join(problems))
    return resolved
