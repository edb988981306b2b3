"""fstring_brace: inside an f-string a value is inserted with ` {`; a plain string is closed to pass it.

    print(f"Processed     ->   {     (then "count} items")")      (prompt A)
    print("Processed      ->  ",     (then " count)")             (prompt B)

The prompts differ only in the `f` prefix.  The plain-string candidate is the
closing quote fused with the comma (`",` / `',`), the token real code has there.
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..context import PairContext
from ..identifiers import VARIABLES
from ..prose import message
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates

TEMPLATES: Templates[str] = Templates(
    "fstring_brace",
    [
        Template("print", "print"),
        Template("logger_info", "logger.info"),
        Template("logger_debug", "logger.debug"),
        Template("logging_warning", "logging.warning"),
        Template("raise_value_error", "raise ValueError"),
        Template("raise_runtime_error", "raise RuntimeError"),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    call = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    q = ctx.choice(['"', "'"])
    text = message(ctx)
    text = text[0].upper() + text[1:]
    value = ctx.name(VARIABLES)
    pad = " " * scope.indent
    prompt_a, prompt_b = fit_in_scope(ctx, scope, f"{pad}{call}(f{q}{text}", f"{pad}{call}({q}{text}")
    return PromptPair(prompt_a, prompt_b, " {", f"{q},", f" {{{value}}}{q})\n", f"{q}, {value})\n")


TASK = Task(
    name="fstring_brace",
    description=(
        'Insert a value (` {`) into an f-string; close a plain string and pass the value as an argument (`",`).'
    ),
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=2,
)
