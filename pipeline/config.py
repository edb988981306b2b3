"""Configuration: loading and merging, over a pipeline model assembled from the registered stages.

Each stage package owns its config sections (`workers/<stage>/config.py`) and
its values in each preset; `PipelineConfig` is the run settings (store, s3,
execution) plus every registered stage's sections, and `PRESETS` the stages'
preset values merged.

Sources, lowest to highest priority: preset < config file (YAML or TOML) <
environment (`SPARSEPIPE_` prefix, `__` for nesting) < `--set a.b=value`.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml
from pydantic import Field, ValidationError, create_model, field_validator

from ..workers.registry import STAGES
from ..workers.stage import ConfigError, Stage, StrictModel
from .presets import collect_presets
from .tracking import missing_trackers

PRESETS = collect_presets(STAGES)


# ----------------------------------------------------------------- run settings


class ExecutionConfig(StrictModel):
    """Where and how to run. Not part of any cache key."""

    address: str | None = Field(None, description="Ray cluster address for --cluster; None: RAY_ADDRESS.")
    connect_timeout_s: float = Field(30.0, gt=0)
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the private local Ray instance; None: all.")
    object_store_mb: int = Field(256, ge=75)
    cpus_per_trainer: float = Field(1.0, gt=0, description="CPUs per training cell (torch threads follow it).")
    gpus_per_trainer: float = Field(1.0, ge=0, description="GPUs asked per training cell when the cluster has GPUs.")
    train_workers: int = Field(
        1,
        ge=1,
        description=(
            "Data-parallel workers per training cell (Ray Train; each gets cpus_per_trainer and gpus_per_trainer). "
            "1: one process, as before."
        ),
    )
    require_gpus: bool = Field(
        False,
        description=(
            "Refuse to run (exit 5, at plan time) when cells to run ask for GPUs and this machine has none, "
            "instead of running them on the CPU; for runs meant for a GPU (infra/gpu_check.sh)."
        ),
    )
    max_concurrent_cells: int = Field(
        4, ge=1, description="Cells of one matrix stage in flight at once (each holds a model in memory)."
    )
    max_retries: int = Field(2, ge=0)
    store_retry_s: float = Field(
        180.0,
        ge=0,
        description=(
            "Seconds a store operation retries transient errors (connection refused, timeouts, 5xx) before the "
            "cell fails."
        ),
    )
    trackers: list[Literal["mlflow", "wandb"]] = Field(
        default_factory=list,
        description=(
            "Where training, bridges and pruning cells send their scalars besides the TensorBoard files they always "
            "write: mlflow ($MLFLOW_TRACKING_URI), wandb ($WANDB_PROJECT; WANDB_MODE=offline needs no account). "
            "Optional extras: pip install 'sparsepipe[mlflow]'."
        ),
    )

    @field_validator("trackers")
    @classmethod
    def _trackers_installed(cls, trackers: list[str]) -> list[str]:
        missing = missing_trackers(trackers)
        if missing:
            raise ValueError(f"{', '.join(missing)} not installed here: pip install 'sparsepipe[{','.join(missing)}]'")
        return trackers


class S3Config(StrictModel):
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; None: AWS_ENDPOINT_URL or AWS.")
    region: str | None = None


class RunSettings(StrictModel):
    """The sections every pipeline config has; the stages' sections are added by `pipeline_config_model`."""

    preset: str = "tiny"
    store: str = Field("./artifacts", description="Artifact store: a local folder or s3://bucket/prefix.")
    s3: S3Config = Field(default_factory=S3Config)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)


def pipeline_config_model(stages: Iterable[Stage]) -> type[RunSettings]:
    """The full config model: the run settings, then each stage's sections in registration order."""
    sections: dict[str, Any] = {}
    for stage in stages:
        for section, model in stage.config.items():
            if section in sections or section in RunSettings.model_fields:
                raise ValueError(f"config section {section!r} of stage {stage.name!r} is declared twice")
            sections[section] = (model, Field(default_factory=model))
    return create_model("PipelineConfig", __base__=RunSettings, __module__=__name__, **sections)


PipelineConfig = pipeline_config_model(STAGES)


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
    # What no single section's model can see (one stage's values against another's): each stage's checks.
    problems = [problem for stage in STAGES for check in stage.checks for problem in check(resolved)]
    if problems:
        raise ConfigError("\n".join(problems))
    return resolved
