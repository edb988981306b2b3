"""Shared fixtures: one stdlib-trained tokenizer and one set of generated pairs per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from stdlib_bpe import train_stdlib_tokenizer
from tokenizers import Tokenizer

from sparsepipe.tasks import PromptPair, get_task
from sparsepipe.tasks.dataset import prompt_budget
from sparsepipe.tasks.tokenization import TokenizerMeasure


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tokenizer.json of a 2048-token BPE trained on the stdlib, built once per session."""
    path = tmp_path_factory.mktemp("stdlib_bpe") / "tokenizer.json"
    train_stdlib_tokenizer().save(str(path))
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(tokenizer_path))


class PairCache:
    """Pairs per (task, split), generated on first use with the session tokenizer.

    The oracle, token, split and syntax tests all read these `per_split` pairs of seed `seed`.
    `measure` is shared with the tests, so its encoding cache already holds the final prompts.
    """

    per_split, seed, max_tokens = 200, 0, 256

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.measure = TokenizerMeasure(tokenizer)
        self._pairs: dict[tuple[str, str], list[PromptPair]] = {}

    def __call__(self, task: str, split: str) -> list[PromptPair]:
        if (task, split) not in self._pairs:
            budget = prompt_budget(self.max_tokens, prepend_eot=True)
            self._pairs[task, split] = get_task(task).make_pairs(split, self.per_split, self.seed, self.measure, budget)
        return self._pairs[task, split]


@pytest.fixture(scope="session")
def pairs(tokenizer: Tokenizer) -> PairCache:
    return PairCache(tokenizer)
