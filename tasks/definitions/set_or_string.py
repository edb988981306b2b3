"""set_or_string: track a variable's type from its initialization.

    seen = set()                     seen = ""
    ... other code ...               ... other code ...
    seen            ->  .add         seen            ->   +=

The prompts differ only in the initial value.  Half the pairs also initialize a
second variable (of either type) near the first, so "is there a set() anywhere"
is not enough: the model has to bind the name to its own initialization.  The
paper chose `.add` / ` +=` because both are single tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import PromptPair, Task
from ..codegen import INDENT, condition, label, short, var
from ..context import PairContext
from ..filler import Filler, fit
from ..identifiers import VARIABLES
from ..scaffold import open_scope
from ..splits import Template, Templates


@dataclass(frozen=True)
class Variant:
    set_init: str  # "{name}" is replaced by the variable
    str_init: str
    use: str  # "statement", "loop" or "conditional"


def _variants() -> list[Template[Variant]]:
    inits = {
        "literal": ("{name} = set()", '{name} = ""'),
        "single_quote": ("{name} = set()", "{name} = ''"),
        "constructor": ("{name} = set()", "{name} = str()"),
        "annotated": ("{name}: set[str] = set()", '{name}: str = ""'),
    }
    return [
        Template(f"{init}/{use}", Variant(set_init, str_init, use))
        for init, (set_init, str_init) in inits.items()
        for use in ("statement", "loop", "conditional")
    ]


TEMPLATES: Templates[Variant] = Templates("set_or_string", _variants())


def _use_site(ctx: PairContext, use: str, indent: int) -> tuple[str, int, str]:
    """Lines that lead up to the variable's use, the use's indentation, and the value it gets."""
    pad = " " * indent
    if use == "loop":
        item = short(ctx)
        return f"{pad}for {item} in {var(ctx)}:\n", indent + INDENT, item
    if use == "conditional":
        value = var(ctx)
        return f"{pad}if {condition(ctx, value)}:\n", indent + INDENT, value
    return "", indent, ctx.choice([var(ctx), label(ctx)])


def make_generator(fixed_name: str | None):
    def generate(ctx: PairContext) -> PromptPair:
        variant = ctx.template(TEMPLATES)
        scope = open_scope(ctx)
        if fixed_name:
            ctx.reserve(fixed_name)
        name = fixed_name or ctx.name(VARIABLES)
        pad = " " * scope.indent
        init_a = pad + variant.set_init.format(name=name) + "\n"
        init_b = pad + variant.str_init.format(name=name) + "\n"
        distractor = ""
        if ctx.chance(0.5):
            other = ctx.name(VARIABLES)
            distractor = pad + ctx.choice([variant.set_init, variant.str_init]).format(name=other) + "\n"
        distractor_first = ctx.chance(0.5)
        lead_in, use_indent, value = _use_site(ctx, variant.use, scope.indent)

        def render(fill: Filler) -> tuple[str, str]:
            head = scope.head(fill) + fill.statements(scope.indent, "before")
            middle = fill.statements(scope.indent, "between") + lead_in + " " * use_indent + name

            def layout(init: str) -> str:
                inits = distractor + init if distractor_first else init + distractor
                return head + inits + middle

            return layout(init_a), layout(init_b)

        prompt_a, prompt_b = fit(ctx, render)
        return PromptPair(prompt_a, prompt_b, ".add", " +=", f".add({value})\n", f" += {value}\n")

    return generate


TASK = Task(
    name="set_or_string",
    description="Continue a variable with `.add` if it was initialized as a set, with ` +=` if as a string.",
    generate=make_generator(None),
    templates=TEMPLATES,
    max_diff_pretokens=6,
)
