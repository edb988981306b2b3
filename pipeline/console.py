"""What every `sparsepipe` command shares: the consoles, the exit codes, and failing with one of them.

Exit codes: 0 done; 1 a stage (or a check) failed; 2 usage or config error; 3 a
batch finished with failed cells; 4 the store cannot be reached; 5 no Ray
cluster answers; 130 interrupted.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_STORE, EXIT_CLUSTER, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130

err = Console(stderr=True)  # progress, logs and errors
out = Console()  # results (tables); --json output is printed plainly


def fail(message: str, code: int) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)
