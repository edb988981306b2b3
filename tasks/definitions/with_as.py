"""with_as: a file opened in a `with` statement continues with ` as`; an assignment ends the line.

    with open(config_path      ->  ")"     (then " as f:")   (prompt A)
    handle = open(config_path  ->  ")\n"                     (prompt B)

The paper measures ` as`.  Under the tinypython pre-tokenizer `)` and the
newline after it fuse into one token `)\n`, so the decision falls one token
earlier: `)` (the line goes on, with ` as`) against `)\n` (the line ends).
"""

from __future__ import annotations

from ..base import PromptPair, Task
from ..codegen import var
from ..context import PairContext
from ..identifiers import VARIABLES
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates

TEMPLATES: Templates[str] = Templates(
    "with_as",
    [
        Template("open", "open({path}"),
        Template("open_mode_variable", "open({path}, {mode}"),
        Template("io_open", "io.open({path}"),
        Template("gzip_open", "gzip.open({path}"),
        Template("bz2_open", "bz2.open({path}"),
        Template("lzma_open", "lzma.open({path}"),
        Template("tarfile_open", "tarfile.open({path}"),
    ],
)


def generate(ctx: PairContext) -> PromptPair:
    opener = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    path = ctx.name(VARIABLES)
    path = ctx.choice([path, path, f"self.{path}", f"args.{path}"])
    handle = ctx.choice(["f", "fh", "fp", "stream", ctx.name(VARIABLES)])
    call = opener.format(path=path, mode=var(ctx))
    pad = " " * scope.indent
    prompt_a, prompt_b = fit_in_scope(ctx, scope, f"{pad}with {call}", f"{pad}{handle} = {call}")
    return PromptPair(prompt_a, prompt_b, ")", ")\n", f") as {handle}:\n", ")\n")


TASK = Task(
    name="with_as",
    description="Keep the line going (`)` then ` as`) after `with open(...`, end it (`)\\n`) after `x = open(...`.",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=2,
)
