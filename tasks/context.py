"""`PairContext`: what a generator draws from while it builds one pair.

It hands out names from the split's part of each identifier pool, picks
templates from the split's part of each template list, records both (so tests
and `tasks check` can prove the splits disjoint), and fits the surrounding code
to a token budget with `fit`.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence, TypeVar

from .errors import PoolExhaustedError, PromptTooLongError
from .filler import Filler
from .splits import Pool, Split, Templates
from .tokenization import TextMeasure

T = TypeVar("T")
Render = Callable[[Filler], tuple[str, str]]


class PairContext:
    def __init__(self, task: str, split: Split, rng: random.Random, measure: TextMeasure, budget: int):
        self.task = task
        self.split = split
        self.rng = rng
        self.measure = measure
        self.budget = budget  # most tokens either prompt may have
        self.used_templates: list[str] = []
        self.used_identifiers: list[str] = []
        self._core_names: set[str] = set()

    # ------------------------------------------------------------------ names

    def name(self, pool: Pool, *, single_token: bool = False) -> str:
        """A name for the task's own construct, different from every name drawn so far in this pair.

        `single_token`: only names that the tokenizer encodes as one token with a leading space
        (` name`), for tasks whose candidate is the name itself.
        """
        return self.names(1, pool, single_token=single_token)[0]

    def names(self, k: int, pool: Pool, *, single_token: bool = False) -> list[str]:
        usable = [w for w in pool.part(self.split) if w not in self._core_names]
        if single_token:
            usable = [w for w in usable if self.measure.is_single_token(" " + w)]
        if len(usable) < k:
            raise PoolExhaustedError(pool.name, self.split, k, len(usable))
        chosen = self.rng.sample(usable, k)
        self.reserve(*chosen)
        self.used_identifiers.extend(f"{pool.name}:{w}" for w in chosen)
        return chosen

    def filler_name(self, pool: Pool) -> str:
        """A name for surrounding code: may repeat within the filler, never a task name."""
        part = pool.part(self.split)
        if self._core_names.issuperset(part):
            raise PoolExhaustedError(pool.name, self.split, 1, 0)
        word = self.rng.choice(part)
        while word in self._core_names:  # core names are a handful; a pool part has dozens of words
            word = self.rng.choice(part)
        self.used_identifiers.append(f"{pool.name}:{word}")
        return word

    def reserve(self, *names: str) -> None:
        """Keep `names` (fixed words a task uses, e.g. `current`) out of all later draws."""
        self._core_names.update(names)

    # -------------------------------------------------------------- templates

    def template(self, templates: Templates[T]) -> T:
        chosen = self.rng.choice(templates.part(self.split))
        self.used_templates.append(f"{templates.family}:{chosen.name}")
        return chosen.body

    # ------------------------------------------------------------ randomness

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def randint(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    # ---------------------------------------------------------------- length

    def count(self, *texts: str) -> int:
        return max(self.measure.count(t) for t in texts)

    def fit(self, render: Render) -> tuple[str, str]:
        """Render the pair with as much surrounding code as a random length target allows.

        `render(fill)` returns both prompts; it places `fill.module()`, `fill.members(indent)` and
        `fill.statements(indent)` where surrounding code belongs.  The target length is drawn
        uniformly between the bare pair and the budget; blocks are added one at a time to randomly
        chosen slots while the (additive) estimate stays under the target, then the exact length is
        checked and blocks are taken back until both prompts fit.
        """
        fill = Filler(self)
        bare = self.count(*render(fill))
        if bare > self.budget:
            raise PromptTooLongError(self.task, bare, self.budget)
        target, estimate, accepted = self.randint(bare, self.budget), bare, []
        while fill.slots:
            slot = self.choice(fill.slots)
            cost = self.measure.count(fill.propose(slot))
            if estimate + cost > target:
                break
            fill.accept(slot)
            accepted.append(slot)
            estimate += cost
        while True:
            prompts = render(fill)
            if self.count(*prompts) <= self.budget:
                return prompts
            fill.retract(accepted.pop())
