"""`PairContext`: what a generator draws from while it builds one pair.

It hands out names from the split's part of each identifier pool, picks
templates from the split's part of each template list, and records both (so tests
and `tasks check` can prove the splits disjoint); `filler.fit` fits the
surrounding code to its token budget.
"""

from __future__ import annotations

import random
from typing import Sequence, TypeVar

from .errors import PoolExhaustedError
from .splits import Pool, Split, Templates
from .tokenization import TextMeasure

T = TypeVar("T")


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
