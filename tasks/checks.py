"""Data checks for `tasks check` and the tests: is every task's data what it claims to be?

Per task and split: the pairs generate; candidates are single tokens and the
prompt/candidate token boundary holds (both enforced by `encode_pairs`); the
candidate is the first token of how the program really goes on ("natural");
the two prompts differ in at most the task's `max_diff_pretokens` pre-tokens;
the oracle gets every prompt right.  Across splits: no identifier is shared, train
shares no template with val or test, and val and test use the same held-out templates
of the task (`splits`: val must see what test measures).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Sequence

from tokenizers import Tokenizer

from .base import PromptPair
from .dataset import DEFAULT_MAX_TOKENS, encode_pairs, generate_pairs
from .errors import TaskError
from .oracles import OracleError, oracle_accuracy
from .registry import get_task
from .splits import SPLITS
from .tokenization import TokenizerMeasure


def token_difference(a: Sequence, b: Sequence) -> tuple[int, int]:
    """Lengths of the differing middles of two token sequences, after their common prefix and suffix."""
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(a), len(b)) - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    return len(a) - prefix - suffix, len(b) - prefix - suffix


def pretokens(tokenizer: Tokenizer, text: str) -> list[str]:
    return [piece for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text)]


def prompt_difference(tokenizer: Tokenizer, pair: PromptPair) -> int:
    """How many pre-tokens the longer differing middle of the pair's prompts has."""
    return max(token_difference(pretokens(tokenizer, pair.prompt_a), pretokens(tokenizer, pair.prompt_b)))


def is_natural(measure: TokenizerMeasure, prompt: str, candidate: str, completion: str) -> bool:
    """Tokenizing prompt + completion gives the prompt's tokens, then the candidate."""
    prompt_ids = measure.encode(prompt)
    return measure.encode(prompt + completion)[: len(prompt_ids) + 1] == prompt_ids + measure.encode(candidate)


@dataclass
class TaskCheck:
    task: str
    pairs: dict[str, int] = field(default_factory=dict)
    tokens_ok: bool = True  # single-token candidates and clean prompt/candidate boundaries
    natural: float = 1.0  # fraction of prompts whose program really continues with the candidate
    max_diff: int = 0  # largest pre-token difference between the prompts of a pair
    max_diff_allowed: int = 0
    diff_ok: bool = True
    disjoint: bool = True
    held_out_shared: bool = True  # val and test pairs use the same task templates
    oracle: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and self.tokens_ok
            and self.natural == 1.0
            and self.diff_ok
            and self.disjoint
            and self.held_out_shared
            and all(a == 1.0 for a in self.oracle.values())
        )

    def as_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


def used_templates(pairs: list[PromptPair], family: str | None = None) -> set[str]:
    """The templates ("family:name") `pairs` were drawn from; only those of `family` when given."""
    return {t for p in pairs for t in p.templates if family is None or t.startswith(f"{family}:")}


def _disjoint(pairs_by_split: dict[str, list[PromptPair]]) -> bool:
    """No identifier in two splits; no template in train and in val or test."""
    names = {split: {i for p in pairs for i in p.identifiers} for split, pairs in pairs_by_split.items()}
    templates = {split: used_templates(pairs) for split, pairs in pairs_by_split.items()}
    held_out = set().union(*(t for split, t in templates.items() if split != "train"))
    return all(not (names[a] & names[b]) for a, b in combinations(names, 2)) and not (
        templates.get("train", set()) & held_out
    )


def _held_out_shared(pairs_by_split: dict[str, list[PromptPair]], family: str) -> bool:
    """Val and test pairs were drawn from the same templates of the task."""
    if "val" not in pairs_by_split or "test" not in pairs_by_split:
        return False
    return used_templates(pairs_by_split["val"], family) == used_templates(pairs_by_split["test"], family)


def check_task(
    name: str, tokenizer: Tokenizer, n_pairs: int = 100, seed: int = 0, max_tokens: int = DEFAULT_MAX_TOKENS
) -> TaskCheck:
    task, measure = get_task(name), TokenizerMeasure(tokenizer)
    result, pairs_by_split = TaskCheck(name), {}
    natural_hits = natural_total = 0
    for split in SPLITS:
        try:
            pairs = generate_pairs(name, tokenizer, split, n_pairs, seed, max_tokens, measure=measure)
        except TaskError as error:
            result.errors.append(f"{split}: {error}")
            continue
        pairs_by_split[split] = pairs
        result.pairs[split] = len(pairs)
        try:
            encode_pairs(name, split, pairs, tokenizer, measure=measure)
        except TaskError as error:
            result.tokens_ok = False
            result.errors.append(f"{split}: {error}")
        try:
            result.oracle[split] = oracle_accuracy(name, pairs)
        except OracleError as error:
            result.oracle[split] = 0.0
            result.errors.append(f"{split}: oracle: {error}")
        for pair in pairs:
            for prompt, candidate, completion in zip(pair.prompts, pair.candidates, pair.completions):
                natural_hits += is_natural(measure, prompt, candidate, completion)
                natural_total += 1
            result.max_diff = max(result.max_diff, prompt_difference(tokenizer, pair))
    result.natural = natural_hits / natural_total if natural_total else 0.0
    result.max_diff_allowed = task.max_diff_pretokens
    result.diff_ok = result.max_diff <= task.max_diff_pretokens
    result.disjoint = _disjoint(pairs_by_split)
    result.held_out_shared = _held_out_shared(pairs_by_split, task.templates.family)
    return result
