"""The pruning search space of Table 2 lives in prune, centred on PruneHyperparams' defaults."""

from __future__ import annotations

import pytest

from sparsepipe.workers.carbs.space import LinearSpace, LogitSpace, LogSpace
from sparsepipe.workers.prune.config import PruneHyperparams
from sparsepipe.workers.prune.space import PRUNING_SPACES, pruning_search_space


def test_pruning_search_space_matches_table_2():
    """Eight hyperparameters with the paper's Table 2 centres, overridable by name."""
    params = {p.name: p for p in pruning_search_space()}
    centers = {
        "k_coef": 1e-4,
        "init_noise_scale": 1e-2,
        "init_noise_bias": 1e-1,
        "wd": 1e-3,
        "lr": 3e-3,
        "inv_beta2": 5e-2,
        "lr_warmup_frac": 5e-2,
        "heaviside_temp": 1.0,
    }
    assert {name: p.search_center for name, p in params.items()} == centers
    assert isinstance(params["init_noise_bias"].space, LinearSpace)
    assert isinstance(params["lr_warmup_frac"].space, LogitSpace)
    assert all(
        isinstance(params[n].space, LogSpace) for n in ("k_coef", "init_noise_scale", "wd", "lr", "heaviside_temp")
    )
    assert 0 < params["inv_beta2"].space.min and params["inv_beta2"].space.max < 1
    assert {p.name: p.search_center for p in pruning_search_space({"lr": 1e-2})}["lr"] == 1e-2
    with pytest.raises(ValueError, match="unknown"):
        pruning_search_space({"learning_rate": 1e-2})


def test_every_tuned_hyperparameter_has_one_space_and_its_centre_is_the_config_default():
    assert set(PRUNING_SPACES) == set(PruneHyperparams.model_fields)
    assert {p.name: p.search_center for p in pruning_search_space()} == PruneHyperparams().model_dump()
