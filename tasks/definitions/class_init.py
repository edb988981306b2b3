"""class_init: in `__init__`, copy the parameter whose name is on the left of `=`.

    def __init__(self, name, size, mode, path):
        self.name = name
        self.size = size
        self.path =        ->  " path"   (prompt A)
        self.mode =        ->  " mode"   (prompt B)

The prompts differ only in the attribute of the last line; both candidate
names are parameters not yet assigned, so position alone does not decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import PromptPair, Task
from ..codegen import INDENT, class_name, docstring, literal
from ..context import PairContext
from ..filler import Filler, fit
from ..identifiers import VARIABLES
from ..splits import Template, Templates

TYPES = ("int", "str", "float", "bool", "list", "dict")


@dataclass(frozen=True)
class Variant:
    base_class: bool
    super_call: bool
    defaults: bool
    annotated: bool
    init_docstring: bool
    keyword_only: bool


TEMPLATES: Templates[Variant] = Templates(
    "class_init",
    [
        Template("plain", Variant(False, False, False, False, False, False)),
        Template("subclass", Variant(True, True, False, False, False, False)),
        Template("defaults", Variant(False, False, True, False, False, False)),
        Template("annotated", Variant(False, False, False, True, False, False)),
        Template("documented", Variant(False, False, False, False, True, False)),
        Template("keyword_only", Variant(True, False, False, False, False, True)),
    ],
)


def _parameter(ctx: PairContext, name: str, variant: Variant) -> str:
    text = f"{name}: {ctx.choice(TYPES)}" if variant.annotated else name
    return f"{text}={literal(ctx)}" if variant.defaults else text


def generate(ctx: PairContext) -> PromptPair:
    variant = ctx.template(TEMPLATES)
    n_assigned = ctx.randint(0, 6)
    assigned = ctx.names(n_assigned, VARIABLES)
    target_a, target_b = ctx.names(2, VARIABLES, single_token=True)
    unassigned = [target_a, target_b] + ctx.names(ctx.randint(0, 2), VARIABLES)
    ctx.rng.shuffle(unassigned)
    params = [_parameter(ctx, p, variant) for p in assigned + unassigned]
    if variant.keyword_only:
        params.insert(ctx.randint(0, len(params) - 1), "*")
    cls, base = class_name(ctx), class_name(ctx)
    header = f"class {cls}({base}):\n" if variant.base_class else f"class {cls}:\n"
    body = " " * 2 * INDENT
    init = f"{' ' * INDENT}def __init__(self, {', '.join(params)}):\n"
    if variant.init_docstring:
        init += docstring(ctx, 2 * INDENT)
    if variant.super_call:
        init += f"{body}super().__init__()\n"
    init += "".join(f"{body}self.{p} = {p}\n" for p in assigned)

    def render(fill: Filler) -> tuple[str, str]:
        before = fill.module() + header + fill.members(INDENT) + init
        return before + f"{body}self.{target_a} =", before + f"{body}self.{target_b} ="

    prompt_a, prompt_b = fit(ctx, render)
    return PromptPair(prompt_a, prompt_b, f" {target_a}", f" {target_b}", f" {target_a}\n", f" {target_b}\n")


TASK = Task(
    name="class_init",
    description="In `__init__`, continue `self.x =` with the parameter ` x` (a copy of the attribute name).",
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=1,
)
