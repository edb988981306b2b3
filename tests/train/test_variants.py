"""Sweep variants: width, sparsity as a nonzero count, lr per variant, dense variants, the paper grid."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.workers.nn.config import ModelConfig, TrainConfig
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.train.config import PRETRAIN_PRESETS, ModelVariant, apply_variant
from sparsepipe.workers.train.stage import dense_cells, pretrain_cells
from sparsepipe.workers.train.summary import lr_group, matrix_params

BASE = TrainConfig(model=ModelConfig(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=16, vocab_size=64))


def test_matrix_params_counts_what_sparsity_counts():
    for config in (BASE.model, BASE.model.model_copy(update={"d_mlp": 40, "n_head": 3})):
        assert matrix_params(GPT(config))[0] == config.matrix_params


def test_target_nonzeros_sets_the_l0_of_a_wider_model():
    narrow = apply_variant(BASE, ModelVariant(name="n", target_nonzeros=1024))
    wide = apply_variant(BASE, ModelVariant(name="w", d_model=64, n_head=4, d_mlp=128, target_nonzeros=1024))
    assert narrow.model.matrix_params * narrow.sparsity.target_l0 == pytest.approx(1024)
    assert wide.model.matrix_params * wide.sparsity.target_l0 == pytest.approx(1024)
    assert (wide.model.d_model, wide.model.n_head, wide.model.d_mlp) == (64, 4, 128)
    assert wide.sparsity.target_l0 < narrow.sparsity.target_l0
    with pytest.raises(ValueError, match="exceeds"):
        apply_variant(BASE, ModelVariant(name="x", target_nonzeros=10**9))
    with pytest.raises(ValidationError, match="not both"):
        ModelVariant(name="y", target_l0=0.1, target_nonzeros=10)


def test_lr_per_variant_and_the_lr_group():
    runs = [apply_variant(BASE, ModelVariant(name=f"lr{lr}", lr=lr)) for lr in (1e-3, 2e-3)]
    assert [r.optim.lr for r in runs] == [1e-3, 2e-3]
    assert lr_group(runs[0]) == lr_group(runs[1])  # an lr sweep is one group
    other = apply_variant(BASE, ModelVariant(name="l0", target_l0=0.5, lr=1e-3))
    assert lr_group(other) != lr_group(runs[0])


def test_dense_variants_are_cells_beside_the_base_model():
    config = resolve_config(
        "smoke", assignments=['dense.variants=[{"name": "wide", "d_model": 64, "n_head": 4}]'], environ={}
    )
    cells = dense_cells(config, {})
    assert [c.cell for c in cells] == ["", "wide"]
    assert cells[1].params["model"]["d_model"] == 64 and not cells[1].params["sparsity"]["enabled"]
    with pytest.raises(Exception, match="sparsity"):
        resolve_config("smoke", assignments=['dense.variants=[{"name": "s", "target_l0": 0.5}]'], environ={})


def test_paper_preset_is_the_fig3_grid_with_a_consistent_lr():
    config = resolve_config("paper", environ={})
    cells = {c.cell: TrainConfig.model_validate(c.params) for c in pretrain_cells(config, {})}
    assert len(cells) == 27
    widths = {t.model.d_model for t in cells.values()}
    assert widths == {512, 1024, 2048}
    for name, train in cells.items():
        nonzeros = int(name.split("_nz")[1].split("_")[0])
        assert train.model.matrix_params * train.sparsity.target_l0 == pytest.approx(nonzeros)
        assert train.model.n_head * train.model.d_head == train.model.d_model
        # 4 weights per neuron fit: L0 >= 4 / d_model
        assert train.sparsity.target_l0 >= 4 / train.model.d_model - 1e-12
        factor = float(name.rsplit("_lr", 1)[1])
        # The reference's lr 1.28e-2 in this code's convention (base = reference x sqrt(target L0)), swept.
        assert train.optim.lr == pytest.approx(1.28e-2 * math.sqrt(train.sparsity.target_l0) * factor, rel=1e-2)
    assert "variants" in PRETRAIN_PRESETS["paper"]["pretrain"]
