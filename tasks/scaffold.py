"""Where a task's code sits in a file: at module level, in a function, in a method, under a main guard.

A `Scope` is drawn once per pair (its names are fixed), then rendered with the
pair's `Filler` each time the prompt is laid out.  Scopes are structure, not a
task template, so they are shared by all splits; the names inside them are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Sequence

from .codegen import INDENT, class_name, distinct_vars, docstring, function_name
from .filler import Filler, fit

if TYPE_CHECKING:
    from .context import PairContext

ScopeKind = Literal["module", "function", "method", "main"]
ALL_SCOPES: tuple[ScopeKind, ...] = ("module", "function", "method", "main")
FUNCTION_SCOPES: tuple[ScopeKind, ...] = ("function", "method")


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    indent: int  # indentation of the body where the task's statements go
    _head: Callable[["Filler"], str]

    def head(self, fill: "Filler") -> str:
        """Everything before the body: module-level filler, then the def/class lines."""
        return self._head(fill)


def _parameters(ctx: "PairContext", first: str | None = None) -> str:
    return ", ".join(([first] if first else []) + distinct_vars(ctx, ctx.randint(0, 3)))


def open_scope(ctx: "PairContext", kinds: Sequence[ScopeKind] = ALL_SCOPES) -> Scope:
    kind = ctx.choice(kinds)
    if kind == "module":
        return Scope(kind, 0, lambda fill: fill.module())
    if kind == "main":
        return Scope(kind, INDENT, lambda fill: fill.module() + 'if __name__ == "__main__":\n')
    doc = docstring(ctx, 2 * INDENT if kind == "method" else INDENT) if ctx.chance(0.3) else ""
    if kind == "function":
        header = f"def {function_name(ctx)}({_parameters(ctx)}):\n{doc}"
        return Scope(kind, INDENT, lambda fill: fill.module() + header)
    class_line = f"class {class_name(ctx)}:\n" + (docstring(ctx, INDENT) if ctx.chance(0.3) else "")
    method = f"    def {function_name(ctx)}({_parameters(ctx, 'self')}):\n{doc}"
    return Scope(kind, 2 * INDENT, lambda fill: fill.module() + class_line + fill.members(INDENT) + method)


def fit_in_scope(ctx: "PairContext", scope: Scope, tail_a: str, tail_b: str) -> tuple[str, str]:
    """The common layout: scope head, statements at the body's indentation, then each prompt's tail."""

    def render(fill: "Filler") -> tuple[str, str]:
        before = scope.head(fill) + fill.statements(scope.indent)
        return before + tail_a, before + tail_b

    return fit(ctx, render)
