"""The dense baseline is dense: no weight sparsity and no AbsTopK, as the reference release's dense models."""

from __future__ import annotations

import pytest

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.presets import PRESET_NAMES
from sparsepipe.workers.train.config import DenseConfig


def test_dense_default_has_no_abstopk():
    train = DenseConfig().train
    assert train.model.afrac is None
    assert not train.sparsity.enabled


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_preset_dense_model_has_no_abstopk(preset):
    config = resolve_config(preset, environ={})
    assert config.dense.train.model.afrac is None
    assert not config.dense.train.sparsity.enabled
    # The sparse models keep theirs.
    assert all(config.pretrain.variant_train_config(v).model.afrac is not None for v in config.pretrain.variants)


def test_a_user_can_still_give_the_dense_model_abstopk():
    config = resolve_config("smoke", assignments=["dense.train.model.afrac=0.25"], environ={})
    assert config.dense.train.model.afrac == 0.25
