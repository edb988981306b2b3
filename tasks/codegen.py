"""Small builders for Python source: names, literals, conditions, indented lines.

Shared by the snippet library and the task generators.  Every name comes from
the split's identifier pools through the `PairContext`, so these helpers never
leak a name across splits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .identifiers import CLASS_NAMES, SHORT_NAMES, VARIABLES, VERBS
from .prose import docstring_text, message

if TYPE_CHECKING:
    from .context import PairContext

INDENT = 4


def lines_at(indent: int, lines: Iterable[str]) -> str:
    """Each line indented by `indent` spaces (nested lines carry their own extra spaces), newline-terminated."""
    return "".join((" " * indent + line if line else "") + "\n" for line in lines)


def var(ctx: "PairContext") -> str:
    return ctx.filler_name(VARIABLES)


def distinct_vars(ctx: "PairContext", k: int) -> list[str]:
    """`k` different variable names (parameters of one function, targets of one unpacking)."""
    names: list[str] = []
    while len(names) < k:
        name = var(ctx)
        if name not in names:
            names.append(name)
    return names


def short(ctx: "PairContext") -> str:
    return ctx.filler_name(SHORT_NAMES)


def function_name(ctx: "PairContext") -> str:
    return f"{ctx.filler_name(VERBS)}_{ctx.filler_name(VARIABLES)}"


def class_name(ctx: "PairContext") -> str:
    return ctx.filler_name(CLASS_NAMES)


def constant_name(ctx: "PairContext") -> str:
    words = [ctx.filler_name(VARIABLES) for _ in range(ctx.randint(1, 2))]
    return "_".join(words).upper()


def quote(ctx: "PairContext") -> str:
    return ctx.choice(['"', "'"])


def string(ctx: "PairContext") -> str:
    """A closed string literal holding a message, in single or double quotes."""
    q = quote(ctx)
    return f"{q}{message(ctx)}{q}"


def label(ctx: "PairContext") -> str:
    """A closed string literal holding one word (a key, a name)."""
    q = quote(ctx)
    return f"{q}{var(ctx)}{q}"


def number(ctx: "PairContext") -> str:
    return ctx.choice([str(ctx.randint(0, 9)), str(ctx.randint(10, 999)), f"{ctx.randint(0, 99)}.{ctx.randint(0, 9)}"])


def literal(ctx: "PairContext") -> str:
    kind = ctx.choice(["number", "number", "string", "string", "None", "bool", "empty"])
    if kind == "number":
        return number(ctx)
    if kind == "string":
        return ctx.choice([string(ctx), label(ctx)])
    if kind == "bool":
        return ctx.choice(["True", "False"])
    if kind == "empty":
        return ctx.choice(["[]", "{}", "()", '""', "''"])
    return "None"


def condition(ctx: "PairContext", name: str) -> str:
    """A condition on `name` that ends in a name or a number (never a bracket or a quote)."""
    return ctx.choice(
        [
            f"{name} is None",
            f"{name} is not None",
            f"not {name}",
            f"{name}",
            f"{name} > {ctx.randint(0, 99)}",
            f"{name} < {var(ctx)}",
            f"{name} == {number(ctx)}",
            f"{name} in {var(ctx)}",
            f"len({name}) > {ctx.randint(0, 9)}",
        ]
    )


def call_args(ctx: "PairContext", low: int = 0, high: int = 3) -> str:
    return ", ".join(ctx.choice([var(ctx), literal(ctx)]) for _ in range(ctx.randint(low, high)))


def docstring(ctx: "PairContext", indent: int) -> str:
    return lines_at(indent, [f'"""{docstring_text(ctx)}"""'])


def indentation_token(columns: int) -> str:
    """The token that starts a line indented by `columns` spaces (before a word).

    The tinypython pre-tokenizer matches a run of spaces with `\\s+(?!\\S)`, which stops one
    space short of the next word: that space joins the word (` total`).  So a line indented by
    8 spaces starts with a 7-space token.
    """
    if columns < 2:
        raise ValueError(f"an indentation of {columns} columns has no token of its own")
    return " " * (columns - 1)
