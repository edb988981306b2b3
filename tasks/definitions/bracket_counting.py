"""bracket_counting: close one bracket or two, depending on whether the open list is nested.

    values = [[1, 2, 3        ->  ]    (then "]\n")   (prompt A, depth 2)
    values = [1, 2, 3         ->  ]\n               (prompt B, depth 1)

As in the paper (section 3.2.2): the prompts differ only in whether the last
list opened inside another, i.e. in one open-bracket token (`[[` vs `[`), and
nothing else in the prompt tells the depth apart.  (An earlier "grid" variant,
a closed nested list before a flat one, put the same open-bracket tokens in
both prompts; the paper's circuit, an open-bracket detector averaged over the
context, cannot separate those, so it is no longer part of this task.)

The reference's candidates are the fused tokens `]]\n` / `]\n`.  A 2048-token
BPE trained on real code has `]\n` but no `]]\n` (nested lists are rare
there): `]]\n` is `]` + `]\n`, so the depth-2 candidate is its first token
`]`, which in real code appears almost only before another `]` (a non-final
row ends with the fused `],`; paper Appendix A.7).  The list's length varies,
which is what dilutes the circuit's averaged depth signal (paper Figure 8).
"""

from __future__ import annotations

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


TEMPLATES: Templates[str] = Templates("bracket_counting", [Template(element, element) for element in ELEMENTS])


def _row(ctx: PairContext, element: str, low: int, high: int) -> str:
    return ", ".join(ELEMENTS[element](ctx) for _ in range(ctx.randint(low, high)))


def generate(ctx: PairContext) -> PromptPair:
    element = ctx.template(TEMPLATES)
    scope = open_scope(ctx)
    pad = " " * scope.indent
    name = ctx.name(VARIABLES)
    last = _row(ctx, element, 1, 12)
    depth_two = f"{pad}{name} = [[{last}"
    depth_one = f"{pad}{name} = [{last}"
    prompt_a, prompt_b = fit_in_scope(ctx, scope, depth_two, depth_one)
    return PromptPair(prompt_a, prompt_b, "]", "]\n", "]]\n", "]\n")


TASK = Task(
    name="bracket_counting",
    description=(
        "At the end of a list's last element, close two brackets (`]`, then `]\\n`) if the list opened inside "
        "another (`[[`), one (`]\\n`) if not."
    ),
    generate=generate,
    templates=TEMPLATES,
    max_diff_pretokens=1,
)
