"""lambda_func: a lambda's parameter is followed by `:`; a function's name by its parameter list.

    key = lambda item     ->  :         (prompt A)
    def item              ->  ():\n     (prompt B)

The paper contrasts `:` with `(`.  Under the tinypython pre-tokenizer `(`
fuses with what follows it (`(self`, `():\n`), so a bare `(` is rarely the
next token; the functions here take no parameters and the candidate is the
fused `():\n`.
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..codegen import INDENT, function_name, literal, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import ALL_SCOPES, FUNCTION_SCOPES, fit_in_scope, open_scope
from ..splits import Template, Templates

# The code before `lambda`, and what closes the lambda's line.
TEMPLATES: Templates[tuple[str, str]] = Templates(
    "lambda_func",
    [
        Template("assign", ("{target} = ", "")),
        Template("attribute", ("{owner}.{target} = ", "")),
        Template("sort_key", ("{owner}.sort(key=", ")")),
        Template("sorted_key", ("{target} = sorted({owner}, key=", ")")),
        Template("return", ("return ", "")),
        Template("call_argument", ("{target} = {call}(", ", {owner})")),
        Template("dict_value", ("{owner}[{q}{target}{q}] = ", "")),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    before_lambda, closer = ctx.template(TEMPLATES)
    scope = open_scope(ctx, FUNCTION_SCOPES if before_lambda.startswith("return") else ALL_SCOPES)
    param, target, owner = ctx.names(3, VARIABLES)
    q = ctx.choice(['"', "'"])
    prefix = before_lambda.format(target=target, owner=owner, call=function_name(ctx), q=q)
    pad = " " * scope.indent
    prompt_a, prompt_b = fit_in_scope(ctx, scope, f"{pad}{prefix}lambda {param}", f"{pad}def {param}")
    lambda_rest = f": {param}.{var(ctx)}{closer.format(owner=owner)}\n"
    function_rest = f"():\n{' ' * (scope.indent + INDENT)}return {literal(ctx)}\n"
    return PromptPair(prompt_a, prompt_b, ":", "():\n", lambda_rest, function_rest)


TASK = Task(
    name="lambda_func",
    description="After `lambda x` predict `:`; after `def x` predict the parameter list (`():\\n`).",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=7,
)
