"""A given tiktoken-style BPE (ranks + the release's pre-tokenizer pattern), converted to our format, encodes
Python to the same ids as tiktoken itself and as a plain BPE written out here."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from sparsepipe.workers.tokenize.encoding import EOT
from sparsepipe.workers.tokenize.given import (
    TINYPYTHON_PATTERN,
    byte_to_unicode,
    given_fingerprint,
    given_tokenizer,
)
from sparsepipe.workers.tokenize.worker import train_tokenizer

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from stdlib_bpe import stdlib_sources  # noqa: E402

VOCAB = 700


@pytest.fixture(scope="module")
def ranks() -> dict[bytes, int]:
    """A tiktoken-style BPE: ranks of a byte-level BPE trained on stdlib code (ids = merge order)."""
    trained = train_tokenizer(stdlib_sources(300_000), VOCAB)
    to_byte = {char: b for b, char in byte_to_unicode().items()}
    return {bytes(to_byte[c] for c in token): i for token, i in trained.get_vocab().items() if token != EOT}


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return stdlib_sources(600_000)[-30:] + ["x = 'é∑ 𝔘'\n\t\r\n  123456 def  f():\n"]


def write_tiktoken(ranks: dict[bytes, int], path: Path) -> Path:
    path.write_text(
        "".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda x: x[1]))
    )
    return path


def plain_bpe(ranks: dict[bytes, int], text: str) -> list[int]:
    """tiktoken's algorithm, written out: split by the pattern, then merge each piece's lowest-rank pair first."""
    regex = pytest.importorskip("regex")
    ids = []
    for piece in regex.findall(TINYPYTHON_PATTERN, text):
        parts = [bytes([b]) for b in piece.encode("utf-8")]
        while len(parts) > 1:
            pairs = [(ranks.get(parts[i] + parts[i + 1]), i) for i in range(len(parts) - 1)]
            pairs = [p for p in pairs if p[0] is not None]
            if not pairs:
                break
            _, i = min(pairs)
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        ids += [ranks[p] for p in parts]
    return ids


def test_tiktoken_ranks_file_encodes_like_a_plain_bpe(tmp_path, ranks, corpus):
    ours = given_tokenizer(str(write_tiktoken(ranks, tmp_path / "tiny.tiktoken")))
    assert ours.get_vocab_size() == VOCAB and ours.token_to_id(EOT) == VOCAB - 1
    for text in corpus:
        assert ours.encode(text, add_special_tokens=False).ids == plain_bpe(ranks, text)


def test_tiktoken_ranks_file_encodes_like_tiktoken(tmp_path, ranks, corpus):
    tiktoken = pytest.importorskip("tiktoken")
    reference = tiktoken.Encoding(
        "tiny", pat_str=TINYPYTHON_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: len(ranks)}
    )
    ours = given_tokenizer(str(write_tiktoken(ranks, tmp_path / "tiny.tiktoken")))
    ids = [ours.encode(text, add_special_tokens=False).ids for text in corpus]
    assert ids == reference.encode_ordinary_batch(corpus)
    assert sum(map(len, ids)) > 50_000
    assert ours.decode(ids[0]) == corpus[0]


def test_the_release_data_gym_pair_converts(tmp_path, ranks, corpus):
    """encoder.json (token -> id, in GPT-2's byte-to-unicode text) + vocab.bpe (the merges, in order)."""
    table = byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(table[b] for b in token)

    folder = tmp_path / "tinypython"
    folder.mkdir()
    encoder = {text(t): r for t, r in ranks.items()} | {EOT: len(ranks)}
    (folder / "encoder.json").write_text(json.dumps(encoder))
    ours_from_ranks = given_tokenizer(str(write_tiktoken(ranks, tmp_path / "r.tiktoken")))
    merges = json.loads(ours_from_ranks.to_str())["model"]["merges"]
    lines = [" ".join(m) if isinstance(m, list) else m for m in merges]
    (folder / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(lines) + "\n")
    ours = given_tokenizer(str(folder))
    for sample in corpus[:10]:
        assert ours.encode(sample).ids == plain_bpe(ranks, sample)
    assert len(given_fingerprint(str(folder))) == 64
