"""What generators and the dataset need from a tokenizer.

Generators see a `TextMeasure`: they count tokens to fit the context budget,
keep only identifiers that are one token, and ask for the first token of a
word whose whole form is several tokens.  `TokenizerMeasure` answers exactly
from a HF `tokenizers.Tokenizer`; `ApproximateMeasure` lets `tasks show` print
prompts without any tokenizer.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer

EOT = "<|endoftext|>"


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer saved by the tokenize stage (`tokenizer.json`)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"no tokenizer at {path}: pass the tokenizer.json written by the tokenize stage")
    return Tokenizer.from_file(str(path))


def eot_id(tokenizer: Tokenizer) -> int | None:
    return tokenizer.token_to_id(EOT)


class TextMeasure(Protocol):
    def count(self, text: str) -> int:
        """Number of tokens of `text`."""
        ...

    def is_single_token(self, text: str) -> bool: ...

    def first_token(self, text: str) -> str:
        """The text of the first token of `text` (the whole `text` when it is one token)."""
        ...


class TokenizerMeasure:
    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._encode = lru_cache(maxsize=1 << 17)(self._encode_uncached)

    def _encode_uncached(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode(self, text: str) -> list[int]:
        return list(self._encode(text))

    def decode_one(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def count(self, text: str) -> int:
        return len(self._encode(text))

    def is_single_token(self, text: str) -> bool:
        return len(self._encode(text)) == 1

    def first_token(self, text: str) -> str:
        return self.decode_one(self._encode(text)[0])


class ApproximateMeasure:
    """Without a tokenizer: about 3.5 characters a token; every string counts as one token."""

    CHARS_PER_TOKEN = 3.5

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.CHARS_PER_TOKEN)

    def is_single_token(self, text: str) -> bool:
        return True

    def first_token(self, text: str) -> str:
        return text
