"""What every `sparsepipe` command shares: consoles, exit codes, failing with one, loading the config and store.

Exit codes: 0 done; 1 a stage (or a check) failed; 2 usage or config error; 3 a
batch finished with failed cells; 4 the store cannot be reached; 5 no Ray
cluster answers; 130 interrupted.

Consoles print full lines when the output is not a terminal. Rich assumes 80
columns when stdout or stderr is a pipe or a file, which cuts table cells and
wraps error messages in the middle of paths. When the stream is not a terminal
(and COLUMNS does not say otherwise) lines are never wrapped. Decided on every
print, since the stream can change (tests swap sys.stdout).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from .config import ConfigError, PipelineConfig, resolve_config
from .dag import Registry, default_registry
from .store import Store, StoreError, StoreSpec
from .store_check import check_store_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_STORE, EXIT_CLUSTER, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130

UNWRAPPED_WIDTH = 10_000
RULE_WIDTH = 100  # a separator line stays this wide when the output is not wrapped


class AdaptiveConsole(Console):
    """A rich Console that does not wrap when its stream is not a terminal (see the module docstring)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is not None or self.is_terminal or os.environ.get("COLUMNS"):
            return size
        return ConsoleDimensions(UNWRAPPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def make_console(stderr: bool = False) -> Console:
    return AdaptiveConsole(stderr=stderr)


err = make_console(stderr=True)  # progress, logs and errors
out = make_console()  # results (tables); --json output is printed plainly


def fail(message: str, code: int) -> NoReturn:
    """Print `error: message` on stderr (one line, paths unbroken) and exit with `code`."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True, highlight=False)


def load_config(
    preset: str | None, config: Path | None, assignments: list[str] | None, store: str | None
) -> PipelineConfig:
    try:
        return resolve_config(preset, config, assignments or [], store=store)
    except ConfigError as error:
        fail(str(error), EXIT_USAGE)
        raise  # unreachable; keeps type checkers calm


# How each kind of command uses the store: (must exist, must be writable, create the folder).
STORE_WRITE, STORE_PLAN, STORE_READ, STORE_CLEAN = (
    (False, True, True),
    (False, False, False),
    (True, False, False),
    (True, True, False),
)


def open_store(config: PipelineConfig, use: tuple[bool, bool, bool] = STORE_WRITE) -> Store:
    """Open the configured store, or exit 4 naming it, before any work is done."""
    must_exist, writable, create = use
    try:
        check_store_url(config.store, must_exist=must_exist, writable=writable)
        spec = StoreSpec(config.store, config.s3.endpoint_url, config.s3.region, retry_s=config.execution.store_retry_s)
        return spec.open(create=create, retry_open=False)
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
