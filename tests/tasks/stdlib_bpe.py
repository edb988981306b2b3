"""A tinypython-style BPE trained on the running interpreter's standard library, for the task tests.

Mirrors what the tokenize stage builds (byte-level BPE, the reference's
pre-tokenizer regex, `<|endoftext|>` as the last id) on a few MB of stdlib
`.py` files chosen by hash, so tests see the kind of vocabulary the pipeline's
default corpus gives.
"""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"
TINYPYTHON_PATTERN = r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def stdlib_sources(budget_bytes: int) -> list[str]:
    """Whole stdlib `.py` files in sha256-of-path order, up to `budget_bytes`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        (p for p in root.rglob("*.py") if "site-packages" not in p.parts),
        key=lambda p: hashlib.sha256(str(p.relative_to(root)).encode()).hexdigest(),
    )
    texts, used = [], 0
    for path in files:
        if used >= budget_bytes:
            break
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        used += len(text)
    return texts


def train_stdlib_tokenizer(vocab_size: int = 2048, budget_bytes: int = 6_000_000) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(TINYPYTHON_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(stdlib_sources(budget_bytes), trainer=trainer)
    tokenizer.add_special_tokens([EOT])
    assert tokenizer.token_to_id(EOT) == vocab_size - 1
    return tokenizer
