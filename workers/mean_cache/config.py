"""The mean_cache stage's settings (the `mean_cache` section) and their values in each preset.

Its own section, so the mean cache's key hashes only what shapes the means: editing prune's settings
(or its code) never re-keys a mean cache.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..stage import StrictModel


class MeanCacheConfig(StrictModel):
    batches: int = Field(32, ge=1, description="Pretraining batches averaged for the mean-ablation cache.")
    batch_size: int = Field(32, ge=1, description="Sequences per batch (all their positions are averaged).")
    seed: int = Field(0, description="Seed of the batch order over the train shards.")


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"mean_cache": {"batches": 2}},
    "tiny": {"mean_cache": {"batches": 16}},
    "paper": {"mean_cache": {"batches": 256}},
}
