"""mean_cache has its own config section; the keys it had under prune say where they went."""

from __future__ import annotations

import pytest

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import default_registry
from sparsepipe.workers.stage import ConfigError


def test_the_mean_cache_section_sets_the_cells_params():
    config = resolve_config("smoke", assignments=["mean_cache.batches=5", "mean_cache.seed=3"], environ={})
    registry = default_registry()
    cells = registry.list_cells(config, registry.closure(["mean_cache"]))["mean_cache"]
    assert cells and all(cell.params == {"batches": 5, "batch_size": 32, "seed": 3} for cell in cells)


def test_an_old_prune_key_names_its_new_place():
    with pytest.raises(ConfigError, match=r"prune.mean_cache_batches is now mean_cache.batches"):
        resolve_config("smoke", assignments=["prune.mean_cache_batches=4"], environ={})
