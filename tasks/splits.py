"""Train / val / test splits: templates split train / held-out, identifiers three ways.

Everything a generator draws from (identifier pools, a task's core templates,
the surrounding-code snippets) is cut into parts by hashing each item's key.
Items are ordered by sha256 of their key and dealt out with fixed quotas
(60 / 20 / 20, at least one item per part), so the assignment depends on the
items alone: not on the seed, the tokenizer or the order they are listed in.

- Identifier pools (`Pool`) keep all three parts: train, val and test pairs share no name.
- Template lists (`Templates`) are split into train and held-out (the last two parts together):
  val and test pairs both draw from every held-out template, and differ only by their pair
  (each pair's own random draw) and their identifiers.  Selection on val (bisection, CARBS)
  then sees every template family that test measures, so a circuit that fails one held-out
  template fails on val too.  (Before, val and test each got their own templates: a task with
  six split 4 / 1 / 1, and val could not catch a circuit that failed test's one template.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Generic, Iterable, Literal, Sequence, TypeVar, get_args

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = get_args(Split)
_FRACTIONS = {"val": 0.2, "test": 0.2}

T = TypeVar("T")


def check_split(split: str) -> Split:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return split  # type: ignore[return-value]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def partition(items: Iterable[T], key: Callable[[T], str]) -> dict[Split, tuple[T, ...]]:
    """Deal `items` into the three splits by the hash of `key(item)`."""
    ordered = sorted(items, key=lambda item: _digest(key(item)))
    keys = [key(item) for item in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate keys in a partition: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    if len(ordered) < len(SPLITS):
        raise ValueError(f"need at least {len(SPLITS)} items to split three ways, got {keys}")
    n_val = max(1, round(_FRACTIONS["val"] * len(ordered)))
    n_test = max(1, round(_FRACTIONS["test"] * len(ordered)))
    n_train = len(ordered) - n_val - n_test
    return {
        "train": tuple(ordered[:n_train]),
        "val": tuple(ordered[n_train : n_train + n_val]),
        "test": tuple(ordered[n_train + n_val :]),
    }


@dataclass(frozen=True)
class Pool:
    """A named list of words (given as one whitespace-separated string), split three ways."""

    name: str
    words_text: str
    words: tuple[str, ...] = field(init=False)
    parts: dict[Split, tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        words = tuple(self.words_text.split())
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "parts", partition(words, key=lambda w: f"{self.name}:{w}"))

    def part(self, split: Split) -> tuple[str, ...]:
        return self.parts[split]


@dataclass(frozen=True)
class Template(Generic[T]):
    """One named variant of a construct; `body` is whatever the owner needs (a format string, a function)."""

    name: str
    body: T


class Templates(Generic[T]):
    """A task's (or the snippet library's) template list, split by name into train and held-out.

    `part("val")` and `part("test")` are both the held-out templates (see the module docstring); the
    train part is the one a three-way `partition` gives, so train pairs are what they were before.
    """

    def __init__(self, family: str, templates: Sequence[Template[T]]):
        self.family = family
        self.all = tuple(templates)
        three = partition(self.all, key=lambda t: f"{family}:{t.name}")
        self.train = three["train"]
        self.held_out = three["val"] + three["test"]

    def part(self, split: Split) -> tuple[Template[T], ...]:
        return self.train if check_split(split) == "train" else self.held_out
