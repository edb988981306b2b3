"""What every `sparsepipe` command shares: consoles, exit codes, failing with one, loading the config and store.

Exit codes: 0 done; 1 a stage (or a check) failed; 2 usage or config error; 3 a
batch finished with failed cells; 4 the store cannot be reached; 5 no Ray
cluster answers; 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console

from .config import ConfigError, PipelineConfig, resolve_config
from .dag import Registry, default_registry
from .store import Store, StoreError, StoreSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_STORE, EXIT_CLUSTER, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130

err = Console(stderr=True)  # progress, logs and errors
out = Console()  # results (tables); --json output is printed plainly


def fail(message: str, code: int) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def load_config(
    preset: str | None, config: Path | None, assignments: list[str] | None, store: str | None
) -> PipelineConfig:
    try:
        return resolve_config(preset, config, assignments or [], store=store)
    except ConfigError as error:
        fail(str(error), EXIT_USAGE)
        raise  # unreachable; keeps type checkers calm


def open_store(config: PipelineConfig) -> Store:
    try:
        return StoreSpec(config.store, config.s3.endpoint_url, config.s3.region).open()
    except StoreError as error:
        fail(str(error), EXIT_STORE)
        raise


def registry() -> Registry:
    return default_registry()


# Options every command that resolves a config takes.
PresetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        "-p",
        help=(
            "smoke (CI, seconds), tiny (default: a laptop, minutes), small (one GPU / a CPU night), paper (the "
            "paper's settings)."
        ),
    ),
]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="A YAML or TOML file laid over the preset.")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", "-s", help="Override one key, highest priority: --set pretrain.train.steps=200 (repeatable)."
    ),
]
StoreOpt = Annotated[
    Optional[str],
    typer.Option(
        "--store",
        help=(
            "Artifact store: a folder (default ./artifacts or $SPARSEPIPE_STORE) or s3://bucket/prefix "
            "(endpoint from AWS_ENDPOINT_URL or s3.endpoint_url)."
        ),
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine-readable output on stdout (progress and logs stay on stderr).")
]
