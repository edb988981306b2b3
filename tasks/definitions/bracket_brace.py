"""bracket_brace: after a string key, a dict continues with `":` and a list with `",`.

    options = {"verbose      ->  ":      (prompt A)
    options = ["verbose      ->  ",      (prompt B)

The prompts differ only in the innermost open bracket.  Some templates nest it
inside an outer dict or list, so the model has to read the innermost one.  The
closing quote fuses with the punctuation after it (`":`, `",`), so those fused
tokens are the candidates; keys are plain words so nothing else fuses.
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..codegen import function_name, literal, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import ALL_SCOPES, FUNCTION_SCOPES, fit_in_scope, open_scope
from ..splits import Template, Templates

# The line up to the key ("{open}" is the bracket that differs, "{q}" the quote), and the
# brackets that close what encloses the differing one.
TEMPLATES: Templates[tuple[str, str]] = Templates(
    "bracket_brace",
    [
        Template("assign", ("{target} = {open}{q}{key}", "")),
        Template("return", ("return {open}{q}{key}", "")),
        Template("call_argument", ("{call}({open}{q}{key}", ")")),
        Template("inside_dict", ("{target} = {{{q}{outer}{q}: {open}{q}{key}", "}")),
        Template("inside_list", ("{target} = [{open}{q}{key}", "]")),
        Template("after_entry", ("{target} = {{{q}{outer}{q}: {value}, {q}{other}{q}: {open}{q}{key}", "}")),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    line, outer_closer = ctx.template(TEMPLATES)
    scope = open_scope(ctx, FUNCTION_SCOPES if line.startswith("return") else ALL_SCOPES)
    q = ctx.choice(['"', "'"])
    key, outer, other = ctx.names(3, VARIABLES)
    fields = dict(target=var(ctx), call=function_name(ctx), q=q, key=key, outer=outer, other=other, value=literal(ctx))
    pad = " " * scope.indent
    prompt_a, prompt_b = fit_in_scope(
        ctx, scope, pad + line.format(open="{", **fields), pad + line.format(open="[", **fields)
    )
    value, item = literal(ctx), var(ctx)
    return PromptPair(
        prompt_a, prompt_b, f"{q}:", f"{q},", f"{q}: {value}}}{outer_closer}\n", f"{q}, {q}{item}{q}]{outer_closer}\n"
    )


TASK = Task(
    name="bracket_brace",
    description='After a string key, continue a dict with `":` and a list with `",` (innermost bracket decides).',
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=1,
)
