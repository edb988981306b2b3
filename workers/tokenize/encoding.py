"""Encoding one unit of documents into packed token rows: shared by the real corpus's shards
(`worker.py`) and the generated corpus's units (`generated.py`)."""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

from .shards import pack_rows

EOT = "<|endoftext|>"


def encode_shard(tokenizer_json: str, texts: list[str], n_ctx: int) -> np.ndarray:
    """One parallel unit: encode documents, join them with EOT, pack into rows."""
    tokenizer = Tokenizer.from_str(tokenizer_json)
    eot = tokenizer.token_to_id(EOT)
    pieces = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        pieces.append(np.asarray(encoding.ids, dtype=np.uint16))
        pieces.append(np.asarray([eot], dtype=np.uint16))
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)
    return pack_rows(stream, n_ctx)
