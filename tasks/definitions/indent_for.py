"""indent_for: after a `for` header, indent the body one level deeper than the header.

    if ready:
        setup()
    for item in items:           ->  7 spaces (body at 8)     (prompt A)
        for item in items:       ->  11 spaces (body at 12)   (prompt B)

The prompts differ only in the `for` line's indentation: in B the loop sits
inside the preceding block.  The candidate is the indentation token, which is
one space shorter than the indentation (see `codegen.indentation_token`).
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, indentation_token, literal, short, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates

# The block before the loop: its lines at "{pad}", its body at "{inner}".
TEMPLATES: Templates[str] = Templates(
    "indent_for",
    [
        Template("if_block", "{pad}if {condition}:\n{inner}{statement}\n"),
        Template("with_block", "{pad}with {resource}:\n{inner}{statement}\n"),
        Template("for_block", "{pad}for {item} in {source}:\n{inner}{statement}\n"),
        Template("while_block", "{pad}while {condition}:\n{inner}{statement}\n"),
        Template("try_except", "{pad}try:\n{inner}{statement}\n{pad}except {error}:\n{inner}{statement2}\n"),
        Template("if_else", "{pad}if {condition}:\n{inner}{statement}\n{pad}else:\n{inner}{statement2}\n"),
    ],
)


def _loop_header(ctx: PairContext, item: str, source: str) -> str:
    return ctx.choice(
        [
            f"for {item} in {source}:",
            f"for {item} in range(len({source})):",
            f"for {short(ctx)}, {item} in enumerate({source}):",
            f"for {item} in sorted({source}):",
        ]
    )


def generate(ctx: PairContext) -> PromptPair:
    block = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    pad, inner = " " * scope.indent, " " * (scope.indent + INDENT)
    item, source = ctx.names(2, VARIABLES)
    before = block.format(
        pad=pad,
        inner=inner,
        condition=condition(ctx, var(ctx)),
        resource=var(ctx),
        item=short(ctx),
        source=var(ctx),
        error=ctx.choice(["ValueError", "KeyError", "OSError"]),
        statement=f"{var(ctx)} = {literal(ctx)}",
        statement2=f"{var(ctx)} = {literal(ctx)}",
    )
    header = _loop_header(ctx, item, source) + "\n"
    prompt_a, prompt_b = fit_in_scope(ctx, scope, before + pad + header, before + inner + header)
    body = f"{var(ctx)}.append({item})\n"
    shallow, deep = scope.indent + INDENT, scope.indent + 2 * INDENT
    return PromptPair(
        prompt_a, prompt_b, indentation_token(shallow), indentation_token(deep), " " * shallow + body, " " * deep + body
    )


TASK = Task(
    name="indent_for",
    description="Indent a `for` loop's body one level deeper than its header (the header's depth varies).",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=2,
)
