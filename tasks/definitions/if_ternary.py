"""if_ternary: an `if` statement's condition ends with `:\n`; a conditional expression's with ` else`.

if count > 10             ->  :\n        (prompt A)
limit = 5 if count > 10   ->   else      (prompt B)
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, function_name, literal, number, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import ALL_SCOPES, FUNCTION_SCOPES, fit_in_scope, open_scope
from ..splits import Template, Templates

# What comes before `if` in the conditional expression, and what closes its line.
TEMPLATES: Templates[tuple[str, str]] = Templates(
    "if_ternary",
    [
        Template("assign", ("{target} = {value} if ", "")),
        Template("return", ("return {value} if ", "")),
        Template("call_argument", ("{call}({value} if ", ")")),
        Template("augmented", ("{target} += {value} if ", "")),
        Template("attribute", ("{owner}.{target} = {value} if ", "")),
        Template("print", ("print({value} if ", ")")),
    ],
)


def _value(ctx: PairContext) -> str:
    return ctx.choice([var(ctx), number(ctx), "None", "True", "False"])


def generate(ctx: PairContext) -> PromptPair:
    expression, closer = ctx.template(TEMPLATES)
    scope = open_scope(ctx, FUNCTION_SCOPES if expression.startswith("return") else ALL_SCOPES)
    cond = condition(ctx, ctx.name(VARIABLES))
    target, owner = ctx.names(2, VARIABLES)
    prefix = expression.format(target=target, owner=owner, value=_value(ctx), call=function_name(ctx))
    pad = " " * scope.indent
    prompt_a, prompt_b = fit_in_scope(ctx, scope, f"{pad}if {cond}", f"{pad}{prefix}{cond}")
    body = f"{' ' * (scope.indent + INDENT)}{var(ctx)} = {literal(ctx)}\n"
    return PromptPair(prompt_a, prompt_b, ":\n", " else", f":\n{body}", f" else {_value(ctx)}{closer}\n")


TASK = Task(
    name="if_ternary",
    description="End an `if` statement's condition with `:\\n`; continue a conditional expression's with ` else`.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=8,
)
