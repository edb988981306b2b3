"""if_equals: a name in a condition is compared (` ==`); a name starting a statement is assigned (` =`).

    if status      ->   ==      (prompt A)
    status         ->   =       (prompt B)

The prompts differ only in the keyword before the name.
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, label, literal, number, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import ALL_SCOPES, FUNCTION_SCOPES, fit_in_scope, open_scope
from ..splits import Template, Templates

# The keyword before the name in prompt A, and whether its line ends with a colon.
TEMPLATES: Templates[tuple[str, bool]] = Templates(
    "if_equals",
    [
        Template("if", ("if", True)),
        Template("elif", ("elif", True)),
        Template("while", ("while", True)),
        Template("assert", ("assert", False)),
        Template("return", ("return", False)),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    keyword, has_colon = ctx.template(TEMPLATES)
    scope = open_scope(ctx, FUNCTION_SCOPES if keyword == "return" else ALL_SCOPES)
    name = ctx.name(VARIABLES)
    pad = " " * scope.indent
    lead_in = ""
    if keyword == "elif":  # both prompts follow the same `if` branch
        lead_in = f"{pad}if {condition(ctx, var(ctx))}:\n{pad}{' ' * INDENT}{var(ctx)} = {literal(ctx)}\n"
    prompt_a, prompt_b = fit_in_scope(ctx, scope, f"{lead_in}{pad}{keyword} {name}", f"{lead_in}{pad}{name}")
    value = ctx.choice([number(ctx), label(ctx), var(ctx)])
    return PromptPair(prompt_a, prompt_b, " ==", " =", f" == {value}{':' if has_colon else ''}\n", f" = {value}\n")


TASK = Task(
    name="if_equals",
    description="Continue a name with ` ==` in a condition (`if x`), with ` =` at the start of a statement (`x`).",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=2,
)
