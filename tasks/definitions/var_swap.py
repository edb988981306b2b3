"""var_swap: finish the swap `a, b = b, a` with the first name of the left side.

    low, high = high,     ->   low      (prompt A)
    high, low = low,      ->   high     (prompt B)

The prompts differ only in the order of the two names on the swap line.
Templates include the Fibonacci and Euclid updates (`a, b = b, a + b`), whose
next token is the same name.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import PromptPair, Task
from ..codegen import INDENT, literal, number
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates


@dataclass(frozen=True)
class Swap:
    lead_in: str  # lines before the swap line, at "{pad}" ("{x}", "{y}" are the names)
    depth: int  # how many levels the swap line is below the scope's body
    rest: str  # what follows the predicted name on the swap line


TEMPLATES: Templates[Swap] = Templates(
    "var_swap",
    [
        Template("plain", Swap("", 0, "")),
        Template("after_assignments", Swap("{pad}{x} = {v1}\n{pad}{y} = {v2}\n", 0, "")),
        Template("compare_then_swap", Swap("{pad}if {x} > {y}:\n", 1, "")),
        Template("fibonacci", Swap("{pad}{x}, {y} = 0, 1\n{pad}for _ in range({n}):\n", 1, " + {y}")),
        Template("euclid", Swap("{pad}while {y}:\n", 1, " % {y}")),
        Template("sort_step", Swap("{pad}for _ in range({n}):\n{pad}    if {y} < {x}:\n", 2, "")),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    swap = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    x, y = ctx.names(2, VARIABLES, single_token=True)
    pad = " " * scope.indent
    swap_pad = pad + " " * INDENT * swap.depth
    lead_in = swap.lead_in.format(pad=pad, x=x, y=y, v1=literal(ctx), v2=literal(ctx), n=number(ctx))
    prompt_a, prompt_b = fit_in_scope(
        ctx, scope, f"{lead_in}{swap_pad}{x}, {y} = {y},", f"{lead_in}{swap_pad}{y}, {x} = {x},"
    )
    rest_a, rest_b = swap.rest.format(y=y), swap.rest.format(y=x)
    return PromptPair(prompt_a, prompt_b, f" {x}", f" {y}", f" {x}{rest_a}\n", f" {y}{rest_b}\n")


TASK = Task(
    name="var_swap",
    description="Finish `x, y = y,` with ` x`, the first name on the left.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=5,
)
