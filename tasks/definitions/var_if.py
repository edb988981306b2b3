"""var_if: a comparison with True in a condition ends with `:\n`; an assignment of True ends with `\n`.

if done == True      ->  :\n      (prompt A)
done = True          ->  \n       (prompt B)
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, function_name, literal, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates

# The keyword of prompt A's condition and the constant compared / assigned.
TEMPLATES: Templates[tuple[str, str]] = Templates(
    "var_if",
    [
        Template(f"{keyword}_{constant.lower()}", (keyword, constant))
        for keyword in ("if", "elif", "while")
        for constant in ("True", "False")
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    keyword, constant = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    name = ctx.name(VARIABLES)
    pad, inner = " " * scope.indent, " " * (scope.indent + INDENT)
    lead_in = ""
    if keyword == "elif":  # both prompts follow the same `if` branch
        lead_in = f"{pad}if {condition(ctx, var(ctx))}:\n{inner}{var(ctx)} = {literal(ctx)}\n"
    prompt_a, prompt_b = fit_in_scope(
        ctx, scope, f"{lead_in}{pad}{keyword} {name} == {constant}", f"{lead_in}{pad}{name} = {constant}"
    )
    return PromptPair(
        prompt_a,
        prompt_b,
        ":\n",
        "\n",
        f":\n{inner}{function_name(ctx)}({var(ctx)})\n",
        f"\n{pad}{function_name(ctx)}({name})\n",
    )


TASK = Task(
    name="var_if",
    description="End `if x == True` with `:\\n`, end `x = True` with `\\n`.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=3,
)
