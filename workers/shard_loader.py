"""The loader of token shards (the tokenize stage's output): shuffled, exactly resumable batches.

Shared: training reads it, and so do mean_cache (pretraining means) and prune (node examples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .tokenize.shards import ShardIndex, read_shard


class ShardLoader:
    """Endless shuffled batches [B, n_ctx + 1] (int64) from one split, resumable exactly.

    Each epoch visits the shards in a seeded order, `window` shards at a time, and
    draws the rows of a window in a seeded order: a batch mixes documents from
    up to `window` shards (one shard's documents alone would make the loss jump
    at every shard boundary), while memory stays at `window` shards.  The
    position (epoch, window, row) is the whole state.  Shards may be local
    paths or any fsspec URL (s3://…).
    """

    def __init__(self, root: str | Path, split: str, batch_size: int, seed: int = 0, window: int = 16):
        self.index = ShardIndex.load(root)
        self.split = split
        self.shards = self.index.shards(split)
        self.batch_size = batch_size
        self.seed = seed
        self.window = window
        self.epoch = 0
        self.window_pos = 0
        self.row_pos = 0
        self._cached: tuple[tuple[int, int], np.ndarray] | None = None

    @property
    def n_ctx(self) -> int:
        return self.index.n_ctx

    @property
    def vocab_size(self) -> int:
        return self.index.vocab_size

    @property
    def total_rows(self) -> int:
        return sum(s["rows"] for s in self.shards)

    @property
    def windows_per_epoch(self) -> int:
        return -(-len(self.shards) // self.window)

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "window_pos": self.window_pos,
            "row_pos": self.row_pos,
            "seed": self.seed,
            "window": self.window,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        for name in ("seed", "window"):
            if state.get(name, getattr(self, name)) != getattr(self, name):
                raise ValueError(
                    f"loader state was saved with {name} {state[name]}, this loader uses {getattr(self, name)}"
                )
        self.epoch, self.window_pos, self.row_pos = state["epoch"], state["window_pos"], state["row_pos"]

    def _rows(self, epoch: int, window_pos: int) -> np.ndarray:
        key = (epoch, window_pos)
        if self._cached is None or self._cached[0] != key:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))
            members = order[window_pos * self.window : (window_pos + 1) * self.window]
            rows = np.concatenate([read_shard(f"{self.index.root}/{self.shards[int(i)]['file']}") for i in members])
            shuffle = np.random.default_rng([self.seed, epoch, window_pos]).permutation(len(rows))
            self._cached = (key, rows[shuffle])
        return self._cached[1]

    def next_batch(self) -> torch.Tensor:
        parts = []
        needed = self.batch_size
        while needed:
            rows = self._rows(self.epoch, self.window_pos)
            take = rows[self.row_pos : self.row_pos + needed]
            parts.append(take)
            needed -= len(take)
            self.row_pos += len(take)
            if self.row_pos >= len(rows):
                self.row_pos = 0
                self.window_pos += 1
                if self.window_pos == self.windows_per_epoch:
                    self.window_pos = 0
                    self.epoch += 1
        return torch.from_numpy(np.concatenate(parts).astype(np.int64))

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield self.next_batch()

    def iter_eval(self, max_batches: int) -> Iterator[torch.Tensor]:
        """A fixed, unshuffled pass over the first rows of the split (same batches every call)."""
        produced = 0
        for shard in self.shards:
            rows = read_shard(f"{self.index.root}/{shard['file']}")
            for start in range(0, len(rows), self.batch_size):
                if produced == max_batches:
                    return
                yield torch.from_numpy(rows[start : start + self.batch_size].astype(np.int64))
                produced += 1
