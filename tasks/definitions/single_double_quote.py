"""single_double_quote: close a string with the quote that opened it.

    raise ValueError("could not open the file      ->  ")\n   (prompt A)
    raise ValueError('could not open the file      ->  ')\n   (prompt B)

The prompts differ only in the opening token, `("` or `('` (one token each in
the tinypython pre-tokenizer; paper Appendix A.7).  The closing quote at the
end of a line is the fused token `")\n` / `')\n`.  Surrounding code holds
closed strings of both kinds, so the model has to find the open one.
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..context import PairContext
from ..prose import message
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates

TEMPLATES: Templates[str] = Templates(
    "single_double_quote",
    [
        Template("print", "print"),
        Template("raise_value_error", "raise ValueError"),
        Template("raise_type_error", "raise TypeError"),
        Template("raise_runtime_error", "raise RuntimeError"),
        Template("logger_info", "logger.info"),
        Template("logger_error", "logger.error"),
        Template("warnings_warn", "warnings.warn"),
        Template("parser_error", "parser.error"),
        Template("sys_exit", "sys.exit"),
        Template("append_message", "messages.append"),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    call = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    text = message(ctx)
    if ctx.chance(0.5):
        text = text[0].upper() + text[1:]
    line = " " * scope.indent + call + "({quote}" + text
    prompt_a, prompt_b = fit_in_scope(ctx, scope, line.format(quote='"'), line.format(quote="'"))
    return PromptPair(prompt_a, prompt_b, '")\n', "')\n", '")\n', "')\n")


TASK = Task(
    name="single_double_quote",
    description="Close a string with the quote that opened it: `\")\\n` after `(\"`, `')\\n` after `('`.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=1,
)
