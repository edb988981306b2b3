"""with_open: open a file for reading or writing according to its variable's name.

    with open(input_path, "     ->  r      (prompt A)
    with open(output_path, "    ->  w      (prompt B)

Names pair a reading and a writing prefix on one stem (input/output, src/dst,
load/save, ...), so the prompts differ only in the prefix.
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..context import PairContext
from ..identifiers import FILE_STEMS, READ_WRITE_PREFIXES
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates

TEMPLATES: Templates[str] = Templates(
    "with_open",
    [
        Template("with_open", "with open({name}, {q}"),
        Template("assign_open", "{handle} = open({name}, {q}"),
        Template("mode_keyword", "with open({name}, mode={q}"),
        Template("io_open", "with io.open({name}, {q}"),
        Template("self_attribute", "with open(self.{name}, {q}"),
        Template("args_attribute", "with open(args.{name}, {q}"),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    line = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    read_prefix, write_prefix = ctx.name(READ_WRITE_PREFIXES).split("/")
    stem = ctx.name(FILE_STEMS)
    q = ctx.choice(['"', "'"])
    handle = ctx.choice(["f", "fh", "fp", "stream"])
    pad = " " * scope.indent
    read_line = pad + line.format(name=f"{read_prefix}_{stem}", q=q, handle=handle)
    write_line = pad + line.format(name=f"{write_prefix}_{stem}", q=q, handle=handle)
    prompt_a, prompt_b = fit_in_scope(ctx, scope, read_line, write_line)
    rest = f"{q}) as {handle}:\n" if line.startswith("with") else f"{q})\n"
    return PromptPair(prompt_a, prompt_b, "r", "w", "r" + rest, "w" + rest)


TASK = Task(
    name="with_open",
    description=(
        "Open for reading (`r`) a file whose name says input/source/load, for writing (`w`) one that "
        "says output/target/save."
    ),
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=1,
)
