"""else_elif: `else` ends its line (`:\n`); `elif` goes on with a condition.

    if count > 10:
        total += 1
    else          ->  :\n       (prompt A)
    elif          ->   not      (prompt B: the first token of its condition)

The paper contrasts `:` with "not `:`".  The `elif` candidate is the first
token of the condition this pair's program goes on with: ` not`, or a name
such as ` value` (names are drawn among those that are one token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, function_name, literal, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import ALL_SCOPES, FUNCTION_SCOPES, fit_in_scope, open_scope
from ..splits import Template, Templates


def _assignment(ctx: PairContext) -> str:
    return f"{var(ctx)} = {literal(ctx)}"


def _call(ctx: PairContext) -> str:
    return f"{function_name(ctx)}({var(ctx)})"


def _return(ctx: PairContext) -> str:
    return f"return {literal(ctx)}"


@dataclass(frozen=True)
class Chain:
    statement: Callable[[PairContext], str]  # makes the statements of the branch bodies
    body_length: int
    earlier_elif: bool  # an `elif` branch before the one that ends the prompt
    in_loop: bool


TEMPLATES: Templates[Chain] = Templates(
    "else_elif",
    [
        Template("assignment_bodies", Chain(_assignment, 1, False, False)),
        Template("long_bodies", Chain(_assignment, 3, False, False)),
        Template("earlier_elif", Chain(_assignment, 1, True, False)),
        Template("call_bodies", Chain(_call, 2, False, False)),
        Template("return_bodies", Chain(_return, 1, True, False)),
        Template("inside_loop", Chain(_call, 1, False, True)),
    ],
)


def _elif_condition(ctx: PairContext) -> str:
    name = ctx.name(VARIABLES, single_token=True)
    return ctx.choice([f"not {name}", f"{name} is None", f"{name} > {ctx.randint(0, 99)}", f"{name} == {var(ctx)}"])


def generate(ctx: PairContext) -> PromptPair:
    chain_shape = ctx.template(TEMPLATES)
    scope = open_scope(ctx, FUNCTION_SCOPES if chain_shape.statement is _return else ALL_SCOPES)
    indent = scope.indent + (INDENT if chain_shape.in_loop else 0)
    pad, body_pad = " " * indent, " " * (indent + INDENT)

    def body() -> str:
        return "".join(f"{body_pad}{chain_shape.statement(ctx)}\n" for _ in range(chain_shape.body_length))

    chain = f"{pad}if {condition(ctx, ctx.name(VARIABLES))}:\n{body()}"
    if chain_shape.earlier_elif:
        chain += f"{pad}elif {condition(ctx, ctx.name(VARIABLES))}:\n{body()}"
    if chain_shape.in_loop:
        chain = f"{' ' * scope.indent}for {ctx.name(VARIABLES)} in {var(ctx)}:\n" + chain
    elif_condition = _elif_condition(ctx)
    candidate_b = ctx.measure.first_token(" " + elif_condition)
    prompt_a, prompt_b = fit_in_scope(ctx, scope, f"{chain}{pad}else", f"{chain}{pad}elif")
    return PromptPair(prompt_a, prompt_b, ":\n", candidate_b, f":\n{body()}", f" {elif_condition}:\n{body()}")


TASK = Task(
    name="else_elif",
    description="End the line (`:\\n`) after `else`; after `elif` go on with the condition's first token.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=1,
)
