"""A given tokenizer (`tokenize.tokenizer: PATH`) instead of a trained one, converted to our format.

PATH is one of
  - our tokenizer.json (HF tokenizers), used as it is;
  - a tiktoken ranks file (`*.tiktoken`: one "base64(token bytes) rank" per line);
  - a folder holding the data-gym pair `encoder.json` + `vocab.bpe`: the reference release's tinypython_2k.
A tiktoken-style BPE (ranks plus a pre-tokenizer pattern, default the release's) becomes a byte-level BPE
in our format that encodes every text to the same ids: the pattern splits the text, each piece's bytes are
merged by rank, lowest first. The end-of-text token keeps its id (data gym: encoder.json's, else the id
after the last rank).
"""

from __future__ import annotations

import base64
import hashlib
import json

import fsspec
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from ..stage import ConfigError
from .encoding import EOT

TINYPYTHON_PATTERN = r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte (what ByteLevel pre-tokenization and data gym files use)."""
    kept = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    table = {b: chr(b) for b in kept}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def new_bpe_tokenizer(pattern: str = TINYPYTHON_PATTERN, vocab=None, merges=None) -> Tokenizer:
    """Our tokenizer's shape: pattern split, byte-level BPE, byte-level decoding."""
    tokenizer = Tokenizer(models.BPE(vocab, merges) if vocab is not None else models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _split_of(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The pair that BPE merged into `token`: run BPE on its bytes with the ranks below its own."""
    limit = ranks[token]
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < limit and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} (rank {limit}) is not a merge of two tokens of lower rank")
    return parts[0], parts[1]


def bpe_from_ranks(ranks: dict[bytes, int], eot_id: int, pattern: str = TINYPYTHON_PATTERN) -> Tokenizer:
    """Our tokenizer for a tiktoken-style BPE: ids = ranks, merges in rank order, EOT at `eot_id`."""
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError("the ranks are not the ids 0 .. n-1")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"the ranks lack single bytes {missing[:5]}: not a byte-level BPE")
    if eot_id in ranks.values():
        raise ValueError(f"end-of-text id {eot_id} is also a token's rank")
    table = byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(table[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = [
        (text(left), text(right))
        for token, _ in sorted(ranks.items(), key=lambda item: item[1])
        if len(token) > 1
        for left, right in [_split_of(token, ranks)]
    ]
    tokenizer = new_bpe_tokenizer(pattern, vocab, merges)
    if eot_id != len(ranks):
        raise ValueError(f"end-of-text id {eot_id} does not follow the last rank {len(ranks) - 1}")
    tokenizer.add_special_tokens([EOT])
    assert tokenizer.token_to_id(EOT) == eot_id
    return tokenizer


def read_tiktoken_ranks(data: str) -> dict[bytes, int]:
    """A `.tiktoken` file: "base64 rank" per line."""
    ranks = {}
    for line in data.splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def read_data_gym(encoder: dict[str, int], merges_text: str) -> tuple[dict[bytes, int], int]:
    """(ranks, end-of-text id) from the data-gym pair; the merges must agree with the ids."""
    to_byte = {char: b for b, char in byte_to_unicode().items()}
    specials = {name: encoder[name] for name in (EOT, "<|startoftext|>") if name in encoder}
    ranks = {bytes(to_byte[c] for c in token): rank for token, rank in encoder.items() if token not in specials}
    lines = [line for line in merges_text.splitlines()[1:] if line.strip()]  # line 1: a version header
    for line in lines:
        left, right = line.split()
        merged = bytes(to_byte[c] for c in left + right)
        if merged not in ranks:
            raise ValueError(f"vocab.bpe merges {line!r} into a token encoder.json lacks")
    return ranks, specials.get(EOT, len(ranks))


def _read(path: str) -> str:
    with fsspec.open(path, "rt", encoding="utf-8") as handle:
        return handle.read()


def _files(path: str) -> list[str]:
    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    folder = path.rstrip("/")
    return [f"{folder}/encoder.json", f"{folder}/vocab.bpe"] if fs.isdir(root) else [path]


def given_fingerprint(path: str) -> str:
    """sha256 over the given tokenizer's files, so an edited file re-tokenizes; a missing one is a config error."""
    digest = hashlib.sha256()
    for file in _files(path):
        try:
            with fsspec.open(file, "rb") as handle:
                digest.update(handle.read())
        except FileNotFoundError:
            raise ConfigError(f"tokenize.tokenizer: {file} does not exist") from None
    return digest.hexdigest()


def given_tokenizer(path: str, pattern: str = TINYPYTHON_PATTERN) -> Tokenizer:
    """Our tokenizer for PATH (see the module docstring)."""
    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    if fs.isdir(root):
        folder = path.rstrip("/")
        encoder = json.loads(_read(f"{folder}/encoder.json"))
        ranks, eot = read_data_gym(encoder, _read(f"{folder}/vocab.bpe"))
        return bpe_from_ranks(ranks, eot, pattern)
    if path.endswith(".json"):
        return Tokenizer.from_str(_read(path))
    ranks = read_tiktoken_ranks(_read(path))
    return bpe_from_ranks(ranks, len(ranks), pattern)
