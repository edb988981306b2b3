"""A task and the datapoint it generates: a pair of prompts with two candidate next tokens."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .errors import PromptTooLongError
from .splits import Split, Templates, check_split
from .tokenization import TextMeasure

if TYPE_CHECKING:
    from .context import PairContext


@dataclass(frozen=True)
class PromptPair:
    """Two prompts that differ minimally; the difference decides the next token.

    `candidate_a` is right after `prompt_a` and `candidate_b` after `prompt_b`; each is one token.
    `completion_a` / `completion_b` is how the generated program goes on (it starts with the
    candidate): tokenizing prompt + completion must give the prompt's tokens, then the candidate.
    `templates` and `identifiers` record what the pair was drawn from ("family:name",
    "pool:word"), so split disjointness can be checked.
    """

    prompt_a: str
    prompt_b: str
    candidate_a: str
    candidate_b: str
    completion_a: str
    completion_b: str
    templates: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.candidate_a == self.candidate_b:
            raise ValueError(f"both candidates are {self.candidate_a!r}: a pair needs two different next tokens")
        for completion, candidate in ((self.completion_a, self.candidate_a), (self.completion_b, self.candidate_b)):
            if not completion.startswith(candidate):
                raise ValueError(f"completion {completion!r} does not start with its candidate {candidate!r}")

    @property
    def prompts(self) -> tuple[str, str]:
        return self.prompt_a, self.prompt_b

    @property
    def candidates(self) -> tuple[str, str]:
        return self.candidate_a, self.candidate_b

    @property
    def completions(self) -> tuple[str, str]:
        return self.completion_a, self.completion_b


Generator = Callable[["PairContext"], PromptPair]
ATTEMPTS = 20


@dataclass(frozen=True)
class Task:
    """One of the 20 binary next-token tasks (paper Table 1).

    `generate(ctx)` builds one pair from the context's split pools and budget.
    `templates` are the task's own variants of its construct, split three ways.
    `max_diff_pretokens` bounds the difference between the two prompts: after removing their
    common prefix and suffix, neither differing middle has more pre-tokens (the pieces the
    tokenizer's regex cuts before BPE: words, punctuation runs, whitespace runs).  Pre-tokens,
    unlike BPE tokens, do not depend on the vocabulary.
    """

    name: str
    description: str
    generate: Generator
    templates: Templates
    max_diff_pretokens: int

    def make_pair(self, split: Split, index: int, seed: int, measure: TextMeasure, budget: int) -> PromptPair:
        """Pair number `index` of `split`: a function of (task, split, seed, index, budget, tokenizer) only.

        When a draw cannot fit the budget even without surrounding code (a long template in a small
        context), the pair is drawn again from a derived seed, up to `ATTEMPTS` times.
        """
        from .context import PairContext

        attempt = 0
        while True:
            suffix = f"/retry{attempt}" if attempt else ""
            rng = random.Random(f"{self.name}/{check_split(split)}/{seed}/{index}{suffix}")
            ctx = PairContext(self.name, split, rng, measure, budget)
            try:
                pair = self.generate(ctx)
                break
            except PromptTooLongError:
                attempt += 1
                if attempt == ATTEMPTS:
                    raise
        return dataclasses.replace(
            pair,
            templates=tuple(dict.fromkeys(ctx.used_templates)),
            identifiers=tuple(dict.fromkeys(ctx.used_identifiers)),
        )

    def make_pairs(self, split: Split, n_pairs: int, seed: int, measure: TextMeasure, budget: int) -> list[PromptPair]:
        return [self.make_pair(split, i, seed, measure, budget) for i in range(n_pairs)]
