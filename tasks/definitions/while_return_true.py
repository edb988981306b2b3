"""while_return_true: indent after `while True:`, dedent after `return True`.

    def check(self, items):
        if items:
            while True:      ->  15 spaces (the loop body)              (prompt A)
            return True      ->  7 spaces  (back one level)             (prompt B)

The prompts differ only in that line.  The candidates are indentation tokens,
one space shorter than the indentation (see `codegen.indentation_token`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, function_name, indentation_token, literal, short, var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import FUNCTION_SCOPES, fit_in_scope, open_scope
from ..splits import Template, Templates


@dataclass(frozen=True)
class Block:
    lines: str  # the block(s) holding the line, starting at "{pad}"
    depth: int  # levels between the scope's body and the line
    after: str  # how the code resumes one level up after `return True`


TEMPLATES: Templates[Block] = Templates(
    "while_return_true",
    [
        Template("if_block", Block("{pad}if {condition}:\n", 1, "return False")),
        Template("try_block", Block("{pad}try:\n", 1, "except {error}:")),
        Template("if_else", Block("{pad}if {condition}:\n{pad}    {statement}\n{pad}else:\n", 1, "return None")),
        Template(
            "elif_branch",
            Block("{pad}if {condition}:\n{pad}    {statement}\n{pad}elif {condition2}:\n", 1, "{statement2}"),
        ),
        Template("nested_if", Block("{pad}if {condition}:\n{pad}    if {condition2}:\n", 2, "{statement2}")),
        Template("for_if", Block("{pad}for {item} in {source}:\n{pad}    if {condition}:\n", 2, "{statement2}")),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    block = ctx.template(TEMPLATES)
    scope = open_scope(ctx, FUNCTION_SCOPES)
    pad = " " * scope.indent
    line_indent = scope.indent + block.depth * INDENT
    fields = dict(
        pad=pad,
        condition=condition(ctx, ctx.name(VARIABLES)),
        condition2=condition(ctx, ctx.name(VARIABLES)),
        item=short(ctx),
        source=var(ctx),
        error=ctx.choice(["ValueError", "KeyError", "OSError", "Exception"]),
        statement=f"{var(ctx)} = {literal(ctx)}",
        statement2=f"{function_name(ctx)}({var(ctx)})",
    )
    before, line_pad = block.lines.format(**fields), " " * line_indent
    prompt_a, prompt_b = fit_in_scope(
        ctx, scope, f"{before}{line_pad}while True:\n", f"{before}{line_pad}return True\n"
    )
    loop_body, resumed = line_indent + INDENT, line_indent - INDENT
    return PromptPair(
        prompt_a,
        prompt_b,
        indentation_token(loop_body),
        indentation_token(resumed),
        " " * loop_body + f"{var(ctx)} = {function_name(ctx)}()\n",
        " " * resumed + block.after.format(**fields) + "\n",
    )


TASK = Task(
    name="while_return_true",
    description="Indent one level after `while True:`, go back one level after `return True`.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=3,
)
