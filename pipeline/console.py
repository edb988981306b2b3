"""Consoles for the CLI: full lines when the output is not a terminal.

Rich assumes 80 columns when stdout or stderr is a pipe or a file, which cuts
table cells and wraps error messages in the middle of paths.  When the stream
is not a terminal (and COLUMNS does not say otherwise) lines are never wrapped.
"""

from __future__ import annotations

import os

from rich.console import Console

UNWRAPPED_WIDTH = 10_000


def make_console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(stderr=stderr, width=UNWRAPPED_WIDTH, soft_wrap=True)
