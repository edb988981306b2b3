"""Token shards: the tokenize stage's output format (see `workers/shard_loader.py` for the loader that reads it).

An artifact holds `shards.json` and Parquet files `train/part-NNNNN.parquet`,
`val/part-NNNNN.parquet`, each with one column `tokens` of fixed-size lists of
`n_ctx + 1` uint16 ids.  Rows overlap by one token (stride n_ctx), so every
next-token transition of the shard's stream is trained exactly once; the last
row wraps around to the shard's start, so no token is thrown away.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARDS_FILE = "shards.json"
TOKENS_COLUMN = "tokens"


def pack_rows(stream: np.ndarray, n_ctx: int) -> np.ndarray:
    """Cut a token stream into rows of n_ctx + 1 with stride n_ctx, wrapping the tail."""
    if len(stream) == 0:
        return np.zeros((0, n_ctx + 1), dtype=np.uint16)
    n_rows = max(1, -(-(len(stream) - 1) // n_ctx))
    needed = n_rows * n_ctx + 1
    reps = -(-needed // len(stream))
    padded = np.tile(stream, reps)[:needed] if reps > 1 else stream[:needed]
    starts = np.arange(n_rows) * n_ctx
    return padded[starts[:, None] + np.arange(n_ctx + 1)[None, :]].astype(np.uint16)


def write_shard(rows: np.ndarray, path: str, filesystem: Any = None) -> None:
    width = rows.shape[1]
    flat = pa.array(rows.reshape(-1).astype(np.uint16), type=pa.uint16())
    column = pa.FixedSizeListArray.from_arrays(flat, width)
    table = pa.table({TOKENS_COLUMN: column})
    if filesystem is None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
    else:
        with filesystem.open(path, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")


def read_shard(path: str) -> np.ndarray:
    with fsspec.open(path, "rb") as handle:
        table = pq.read_table(handle)
    column = table.column(TOKENS_COLUMN).combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def write_token_shards(
    rows: np.ndarray, root: str | Path, split: str, vocab_size: int, eot_id: int | None = None
) -> None:
    """Write one split of rows as a single shard and (re)write shards.json; for tests and small tools."""
    root = Path(root)
    relative = f"{split}/part-00000.parquet"
    write_shard(rows, str(root / relative))
    index_path = root / SHARDS_FILE
    index = json.loads(index_path.read_text()) if index_path.exists() else {"splits": {}}
    index.update(
        {
            "n_ctx": int(rows.shape[1] - 1),
            "vocab_size": int(vocab_size),
            "eot_id": int(vocab_size - 1 if eot_id is None else eot_id),
        }
    )
    index["splits"][split] = [
        {"file": relative, "rows": int(rows.shape[0]), "tokens": int(rows.shape[0] * (rows.shape[1] - 1))}
    ]
    index_path.write_text(json.dumps(index, indent=2))


@dataclass
class ShardIndex:
    root: str
    n_ctx: int
    vocab_size: int
    eot_id: int
    splits: dict[str, list[dict[str, Any]]]

    @classmethod
    def load(cls, root: str | Path) -> "ShardIndex":
        root = str(root).rstrip("/")
        try:
            with fsspec.open(f"{root}/{SHARDS_FILE}", "rt") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{root} holds no {SHARDS_FILE}: it is not a tokenize artifact (run `sparsepipe run tokenize`)"
            ) from None
        return cls(
            root=root, n_ctx=data["n_ctx"], vocab_size=data["vocab_size"], eot_id=data["eot_id"], splits=data["splits"]
        )

    def shards(self, split: str) -> list[dict[str, Any]]:
        if not self.splits.get(split):
            raise ValueError(f"the token shards at {self.root} have no {split!r} rows")
        return self.splits[split]
