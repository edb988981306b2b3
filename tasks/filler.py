"""Surrounding code, block by block, for the places a prompt leaves open.

A generator's render function asks the `Filler` for the code of a slot:
module-level definitions, class members or statements at some indentation.
At first every slot is empty; `fit` (below) grows slots one block at a
time.  Blocks are made lazily and kept, so rendering again with the same
counts gives the same text, and both prompts of a pair share every block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from . import snippets
from .errors import PromptTooLongError

if TYPE_CHECKING:
    from .context import PairContext

Slot = tuple[str, int, str]  # (kind, indentation, place)
Render = Callable[["Filler"], tuple[str, str]]

_MAKERS: dict[str, Callable[["PairContext", int], str]] = {
    "module": snippets.module_block,
    "members": snippets.member_block,
    "statements": snippets.statement_block,
}


class Filler:
    def __init__(self, ctx: "PairContext"):
        self._ctx = ctx
        self._blocks: dict[Slot, list[str]] = {}
        self._accepted: dict[Slot, int] = {}

    def module(self) -> str:
        """Top-level definitions (imports, constants, functions, classes), each followed by a blank line.

        Import blocks come first, as in a real module.
        """
        blocks = self._accepted_blocks(("module", 0, ""))
        return "".join(sorted(blocks, key=lambda block: not block.startswith("import ")))

    def members(self, indent: int) -> str:
        """Class-body members (attributes, methods) at `indent`, each followed by a blank line."""
        return self._text(("members", indent, ""))

    def statements(self, indent: int, place: str = "") -> str:
        """Complete statements at `indent` (a block statement brings its own deeper body).

        `place` names the slot when one prompt has several statement slots at the same indentation.
        """
        return self._text(("statements", indent, place))

    @property
    def slots(self) -> list[Slot]:
        return list(self._blocks)

    def propose(self, slot: Slot) -> str:
        """The block that `accept(slot)` would add next."""
        blocks = self._blocks[slot]
        if len(blocks) == self._accepted[slot]:
            kind, indent, _ = slot
            blocks.append(_MAKERS[kind](self._ctx, indent))
        return blocks[self._accepted[slot]]

    def accept(self, slot: Slot) -> None:
        self.propose(slot)
        self._accepted[slot] += 1

    def retract(self, slot: Slot) -> None:
        self._accepted[slot] -= 1

    def _accepted_blocks(self, slot: Slot) -> list[str]:
        self._blocks.setdefault(slot, [])
        self._accepted.setdefault(slot, 0)
        return self._blocks[slot][: self._accepted[slot]]

    def _text(self, slot: Slot) -> str:
        return "".join(self._accepted_blocks(slot))


def fit(ctx: "PairContext", render: Render) -> tuple[str, str]:
    """Render the pair with as much surrounding code as a random length target allows.

    `render(fill)` returns both prompts; it places `fill.module()`, `fill.members(indent)` and
    `fill.statements(indent)` where surrounding code belongs.  The target length is drawn
    uniformly between the bare pair and the budget; blocks are added one at a time to randomly
    chosen slots while the (additive) estimate stays under the target, then the exact length is
    checked and blocks are taken back until both prompts fit.
    """
    fill = Filler(ctx)
    bare = ctx.count(*render(fill))
    if bare > ctx.budget:
        raise PromptTooLongError(ctx.task, bare, ctx.budget)
    target, estimate, accepted = ctx.randint(bare, ctx.budget), bare, []
    while fill.slots:
        slot = ctx.choice(fill.slots)
        cost = ctx.measure.count(fill.propose(slot))
        if estimate + cost > target:
            break
        fill.accept(slot)
        accepted.append(slot)
        estimate += cost
    while True:
        prompts = render(fill)
        if ctx.count(*prompts) <= ctx.budget:
            return prompts
        fill.retract(accepted.pop())
