"""for_while: a `for` header continues with ` in`, a `while` header with `:\n`.

for node      ->   in       (prompt A)
while node    ->  :\n       (prompt B)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, literal, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..prose import message
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates


@dataclass(frozen=True)
class LeadIn:
    line: str  # the line before the loop header ("{pad}" is the scope's indentation)
    opens_block: bool  # the header goes one level deeper


TEMPLATES: Templates[LeadIn] = Templates(
    "for_while",
    [
        Template("plain", LeadIn("", False)),
        Template("after_assignment", LeadIn("{pad}{name} = {value}\n", False)),
        Template("after_comment", LeadIn("{pad}# {comment}\n", False)),
        Template("inside_if", LeadIn("{pad}if {condition}:\n", True)),
        Template("inside_try", LeadIn("{pad}try:\n", True)),
        Template("inside_with", LeadIn("{pad}with {resource}:\n", True)),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    lead_in = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    name, source = ctx.names(2, VARIABLES)
    pad = " " * scope.indent
    loop_pad = " " * (scope.indent + INDENT) if lead_in.opens_block else pad
    before = lead_in.line.format(
        pad=pad,
        name=name,
        value=literal(ctx),
        comment=message(ctx),
        condition=condition(ctx, var(ctx)),
        resource=var(ctx),
    )
    prompt_a, prompt_b = fit_in_scope(ctx, scope, f"{before}{loop_pad}for {name}", f"{before}{loop_pad}while {name}")
    return PromptPair(prompt_a, prompt_b, " in", ":\n", f" in {source}:\n", ":\n")


TASK = Task(
    name="for_while",
    description="Continue a loop header with ` in` after `for x`, with `:\\n` after `while x`.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=1,
)
