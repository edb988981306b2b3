"""enumerate_range: a loop over two names iterates ` enumerate(...)`; over one index, ` range(...)`.

    for i, line in      ->   enumerate    (prompt A)
    for i in            ->   range        (prompt B)

` enumerate` is not one token in a 2048-token standard-library BPE, so the
candidate is its first token (` en` there), asked of the tokenizer at
generation time; ` range` is one token.
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, literal, var
from ..context import PairContext
from ..identifiers import SHORT_NAMES, VARIABLES
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates

# The lines up to the loop's start "{loop}" (at "{pad}", "{inner}" one level deeper), and what
# closes the loop header.
TEMPLATES: Templates[tuple[str, str]] = Templates(
    "enumerate_range",
    [
        Template("plain", ("{pad}{loop}", ":")),
        Template("after_assignment", ("{pad}{source} = {value}\n{pad}{loop}", ":")),
        Template("inside_if", ("{pad}if {condition}:\n{inner}{loop}", ":")),
        Template("nested_loop", ("{pad}for {outer} in {other}:\n{inner}{loop}", ":")),
        Template("inside_try", ("{pad}try:\n{inner}{loop}", ":")),
        Template("comprehension", ("{pad}{target} = [{index} {loop}", "]")),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    layout, closer = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    index = ctx.name(SHORT_NAMES)
    item, source, target, outer = ctx.names(4, VARIABLES)
    fields = dict(
        pad=" " * scope.indent,
        inner=" " * (scope.indent + INDENT),
        source=source,
        value=literal(ctx),
        condition=condition(ctx, var(ctx)),
        outer=outer,
        other=var(ctx),
        target=target,
        index=index,
    )
    tail_a = layout.format(loop=f"for {index}, {item} in", **fields)
    tail_b = layout.format(loop=f"for {index} in", **fields)
    prompt_a, prompt_b = fit_in_scope(ctx, scope, tail_a, tail_b)
    return PromptPair(
        prompt_a,
        prompt_b,
        ctx.measure.first_token(" enumerate"),
        " range",
        f" enumerate({source}){closer}\n",
        f" range(len({source})){closer}\n",
    )


TASK = Task(
    name="enumerate_range",
    description="Loop with ` enumerate` over `for i, x in`, with ` range` over `for i in`.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=2,
)
