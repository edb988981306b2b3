"""final_kwarg: after a parameter with a default, the next parameter needs one too.

    def load_items(path, mode=None, buffer     ->  =None      (prompt A)
    def load_items(path, mode, buffer          ->  ):\n       (prompt B)

The prompts differ in one default value on the parameter before the last.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import PromptPair, Task
from ..codegen import INDENT, class_name, function_name, var
from ..context import PairContext
from ..filler import Filler, fit
from ..identifiers import VARIABLES
from ..splits import Template, Templates

DEFAULTS = ("None", "None", "0", "1", "True", "False", '""', "''", "()", "1.0", '"utf-8"', "-1")


@dataclass(frozen=True)
class Signature:
    where: str  # "module", "class" or "nested" (inside a function body)
    prefix: str  # decorator lines and the def keyword(s)
    first: str | None  # self / cls
    name: str | None = None  # a fixed name (__init__); otherwise one is drawn


TEMPLATES: Templates[Signature] = Templates(
    "final_kwarg",
    [
        Template("function", Signature("module", "def", None)),
        Template("async_function", Signature("module", "async def", None)),
        Template("cached_function", Signature("module", "@functools.lru_cache(maxsize=None)\ndef", None)),
        Template("method", Signature("class", "def", "self")),
        Template("init", Signature("class", "def", "self", "__init__")),
        Template("classmethod", Signature("class", "@classmethod\ndef", "cls")),
        Template("staticmethod", Signature("class", "@staticmethod\ndef", None)),
        Template("nested_function", Signature("nested", "def", None)),
    ],
)


def _indented(text: str, indent: int) -> str:
    return "\n".join(" " * indent + line for line in text.split("\n"))


def generate(ctx: PairContext) -> PromptPair:
    signature = ctx.template(TEMPLATES)
    name = signature.name or function_name(ctx)
    leading = ctx.names(ctx.randint(0, 3), VARIABLES)
    switch, last = ctx.names(2, VARIABLES)
    default = ctx.choice(DEFAULTS)
    params = ([signature.first] if signature.first else []) + leading
    head_a = ", ".join(params + [f"{switch}={default}", last])
    head_b = ", ".join(params + [switch, last])
    outer_name, container = var(ctx), class_name(ctx)

    def render(fill: Filler) -> tuple[str, str]:
        before, indent = fill.module(), 0
        if signature.where == "class":
            before, indent = before + f"class {container}:\n" + fill.members(INDENT), INDENT
        elif signature.where == "nested":
            before, indent = before + f"def {outer_name}():\n" + fill.statements(INDENT), INDENT
        line = _indented(f"{signature.prefix} {name}(", indent)
        return before + line + head_a, before + line + head_b

    prompt_a, prompt_b = fit(ctx, render)
    return PromptPair(prompt_a, prompt_b, "=None", "):\n", "=None):\n", "):\n")


TASK = Task(
    name="final_kwarg",
    description=(
        "Give the last parameter a default (`=None`) when the one before it has a default, else close "
        "the signature (`):\\n`)."
    ),
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=5,
)
