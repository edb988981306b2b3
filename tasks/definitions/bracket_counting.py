"""bracket_counting: close one bracket or two, depending on the nesting depth.

    grid = [[1, 2], [3, 4], [5, 6        ->  ]    (then "]\n")   (prompt A, depth 2)
    grid = [[1, 2], [3, 4]]
    point = [5, 6                         ->  ]\n               (prompt B, depth 1)

The reference's candidates are the fused tokens `]]\n` / `]\n`.  A 2048-token
BPE trained on the standard library has `]\n` but no `]]\n` (nested lists
are rare there): `]]\n` is `]` + `]\n`, so the depth-2 candidate is its first
token `]`, which in real code appears almost only before another `]` (a
non-final row ends with the fused `],`; paper Appendix A.7).  Rows vary in
number and length, which is what dilutes the circuit's averaged depth signal
(paper Figure 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..base import PromptPair, Task
from ..context import PairContext
from ..identifiers import SHORT_NAMES, VARIABLES
from ..scaffold import fit_in_scope, open_scope
from ..splits import Template, Templates


def _ints(ctx: PairContext) -> str:
    return str(ctx.randint(0, 99))


def _negatives(ctx: PairContext) -> str:
    return str(ctx.randint(-9, 9))


def _floats(ctx: PairContext) -> str:
    return f"{ctx.randint(0, 9)}.{ctx.randint(0, 99)}"


def _names(ctx: PairContext) -> str:
    return ctx.filler_name(SHORT_NAMES)


def _constants(ctx: PairContext) -> str:
    return ctx.choice(["True", "False", "None", "0", "1"])


ELEMENTS: dict[str, Callable[[PairContext], str]] = {
    "ints": _ints,
    "negatives": _negatives,
    "floats": _floats,
    "names": _names,
    "constants": _constants,
}


@dataclass(frozen=True)
class Variant:
    grid: bool  # rows before the last one (A) / a finished grid before a new flat list (B)
    element: str


TEMPLATES: Templates[Variant] = Templates(
    "bracket_counting",
    [
        Template(f"{shape}/{element}", Variant(shape == "grid", element))
        for shape in ("single_row", "grid")
        for element in ELEMENTS
    ],
)


def _row(ctx: PairContext, element: str, low: int, high: int) -> str:
    return ", ".join(ELEMENTS[element](ctx) for _ in range(ctx.randint(low, high)))


def generate(ctx: PairContext) -> PromptPair:
    variant = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    pad = " " * scope.indent
    name, other = ctx.names(2, VARIABLES)
    last = _row(ctx, variant.element, 1, 12)
    if variant.grid:
        rows = ", ".join(f"[{_row(ctx, variant.element, 1, 6)}]" for _ in range(ctx.randint(1, 6)))
        depth_two = f"{pad}{name} = [{rows}, [{last}"
        depth_one = f"{pad}{name} = [{rows}]\n{pad}{other} = [{last}"
    else:
        depth_two = f"{pad}{name} = [[{last}"
        depth_one = f"{pad}{name} = [{last}"
    prompt_a, prompt_b = fit_in_scope(ctx, scope, depth_two, depth_one)
    return PromptPair(prompt_a, prompt_b, "]", "]\n", "]]\n", "]\n")


TASK = Task(
    name="bracket_counting",
    description=(
        "At the end of a list's last element, close two brackets (`]`, then `]\\n`) inside a nested "
        "list, one (`]\\n`) in a flat one."
    ),
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=4,
)
