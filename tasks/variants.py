"""Derived tasks: twins of a Table 1 task with the same prompts and candidates and a transformed answer.

They are the controls of a circuit (DESIGN.md, "Controls"): what pruning finds on a task means something only
beside what the same pruning finds where the model has nothing to find.

- `<task>__flipped`: the correct candidate is always the other one. A consistent rule, so a circuit could carry it
  to held-out pairs, but one the model was never trained on and gets wrong. If pruning reaches the target here, the
  masks manufacture behaviour the model does not have (the nonsense-task test of the method's critics).
- `<task>__shuffled`: for each pair, a salted hash of the pair's text decides whether the answer is the real one or
  the other: a fixed pseudo-random function of the pair that no circuit can carry to held-out pairs, so a model that
  solves the task scores chance on it. If its val or test loss reaches the target, something leaks.

A twin draws exactly its base task's pairs (same seeds, same splits); only `TaskBatch.correct` differs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, get_args

from .base import PromptPair, Task
from .splits import Split, Templates
from .tokenization import TextMeasure

TwinKind = Literal["flipped", "shuffled"]
TWIN_KINDS: tuple[TwinKind, ...] = get_args(TwinKind)
TWIN_SEPARATOR = "__"
SHUFFLE_SALT = "sparsepipe/shuffled-twin/v1"


def twin_name(task: str, kind: str) -> str:
    return f"{task}{TWIN_SEPARATOR}{kind}"


def shuffled_swap(task: str, pair: PromptPair) -> bool:
    """The shuffled twin's coin for `pair`: a salted sha256 of the task and the pair's prompts and candidates."""
    text = "\x00".join((SHUFFLE_SALT, task, *pair.prompts, *pair.candidates))
    return hashlib.sha256(text.encode()).digest()[0] & 1 == 1


@dataclass(frozen=True)
class TaskTwin:
    """A task whose pairs are `base`'s and whose answer is transformed (`swapped`); used wherever a Task is."""

    base: Task
    kind: TwinKind

    @property
    def name(self) -> str:
        return twin_name(self.base.name, self.kind)

    @property
    def description(self) -> str:
        if self.kind == "flipped":
            return f"control: {self.base.name} with the other candidate always correct"
        return f"control: {self.base.name} with a pseudo-random half of the pairs' answers swapped (chance level)"

    @property
    def templates(self) -> Templates:
        return self.base.templates

    @property
    def max_diff_pretokens(self) -> int:
        return self.base.max_diff_pretokens

    def swapped(self, pair: PromptPair) -> bool:
        """True: prompt A's correct candidate is candidate B and prompt B's is candidate A."""
        return True if self.kind == "flipped" else shuffled_swap(self.base.name, pair)

    def make_pair(self, split: Split, index: int, seed: int, measure: TextMeasure, budget: int) -> PromptPair:
        return self.base.make_pair(split, index, seed, measure, budget)

    def make_pairs(self, split: Split, n_pairs: int, seed: int, measure: TextMeasure, budget: int) -> list[PromptPair]:
        return self.base.make_pairs(split, n_pairs, seed, measure, budget)


def twins_of(tasks: dict[str, Task]) -> dict[str, TaskTwin]:
    """Every twin of every task, by name: each task's flipped twin, then its shuffled twin."""
    twins = (TaskTwin(task, kind) for task in tasks.values() for kind in TWIN_KINDS)
    return {twin.name: twin for twin in twins}
