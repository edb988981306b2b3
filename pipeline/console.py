"""Consoles for the CLI: full lines when the output is not a terminal.

Rich assumes 80 columns when stdout or stderr is a pipe or a file, which cuts
table cells and wraps error messages in the middle of paths.  When the stream
is not a terminal (and COLUMNS does not say otherwise) lines are never wrapped.
Decided on every print, since the stream can change (tests swap sys.stdout).
"""

from __future__ import annotations

import os

from rich.console import Console, ConsoleDimensions

UNWRAPPED_WIDTH = 10_000


class AdaptiveConsole(Console):
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
