"""The random-init control: the trained model's architecture, seed and final weight L0, never trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sparsepipe.pipeline.config import resolve_config
from sparsepipe.pipeline.dag import default_registry
from sparsepipe.workers.context import local_context
from sparsepipe.workers.nn.config import ModelConfig, OptimConfig, SparsityConfig, TrainConfig
from sparsepipe.workers.nn.gpt import GPT, load_checkpoint, save_checkpoint
from sparsepipe.workers.nn.training import Trainer
from sparsepipe.workers.prune.controls import control_checkpoint, control_of, control_source
from sparsepipe.workers.random_init.worker import CONTROL_FILE, run_random_init
from sparsepipe.workers.train.summary import TRAIN_CONFIG_FILE

VOCAB, N_CTX = 16, 16


def train_config(sparse: bool, steps: int = 6) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=N_CTX, vocab_size=VOCAB),
        optim=OptimConfig(lr=1e-2),
        sparsity=SparsityConfig(enabled=sparse, target_l0=0.25),
        batch_size=4,
        steps=steps,
        seed=7,
    )


def trained_checkpoint(folder: Path, train: TrainConfig) -> GPT:
    """A checkpoint folder as the pretrain stage writes it, after `train.steps` steps on random tokens."""
    torch.manual_seed(train.seed)
    trainer = Trainer(GPT(train.model), train)
    generator = torch.Generator().manual_seed(0)
    for _ in range(train.steps):
        trainer.train_step(torch.randint(VOCAB, (train.batch_size, N_CTX + 1), generator=generator))
    save_checkpoint(trainer.model, folder)
    (folder / TRAIN_CONFIG_FILE).write_text(train.model_dump_json())
    return trainer.model


def nonzero_counts(model: GPT) -> dict[str, int]:
    params = dict(model.named_parameters())
    return {
        name: int(torch.count_nonzero(params[name]))
        for name, role in model.parameter_roles().items()
        if role.kind == "matrix"
    }


@pytest.mark.parametrize("sparse", [True, False])
def test_the_control_is_the_untrained_init_at_the_trained_l0(tmp_path, sparse):
    train = train_config(sparse)
    trained = trained_checkpoint(tmp_path / "trained", train)
    ctx = local_context(tmp_path / "control", inputs={"checkpoint": tmp_path / "trained"})
    run_random_init(ctx, "pretrain/toy")

    control = load_checkpoint(ctx.out_dir)
    assert control.config == trained.config
    # The trained model's weight L0, matrix by matrix.
    assert nonzero_counts(control) == nonzero_counts(trained)
    if sparse:
        assert sum(nonzero_counts(control).values()) < 0.3 * sum(
            p.numel() for p in trained.parameters() if p.dim() == 2
        )
    # Never trained: every weight it keeps is the initialisation's (same seed, same order of draws), and no weight
    # equals the trained model's there.
    torch.manual_seed(train.seed)
    init = dict(GPT(train.model).named_parameters())
    trained_params = dict(trained.named_parameters())
    for name, weight in control.named_parameters():
        kept = weight != 0
        assert torch.equal(weight[kept], init[name][kept]), name
        if name.endswith("c_fc.weight"):
            assert not torch.equal(weight, trained_params[name]), name
    record = json.loads((ctx.out_dir / CONTROL_FILE).read_text())
    assert record["trained_steps"] == 0 and record["source"] == "pretrain/toy" and record["seed"] == 7
    assert (ctx.out_dir / TRAIN_CONFIG_FILE).exists()


def test_a_checkpoint_without_a_training_config_is_refused(tmp_path):
    model = GPT(train_config(True).model)
    save_checkpoint(model, tmp_path / "imported")
    ctx = local_context(tmp_path / "control", inputs={"checkpoint": tmp_path / "imported"})
    with pytest.raises(FileNotFoundError, match="train_config.json"):
        run_random_init(ctx, "imported/x")


def test_names():
    assert control_checkpoint("pretrain/tiny") == "random_init/pretrain/tiny"
    assert control_source("random_init/dense") == "dense" and control_source("dense") is None
    assert control_of("random_init/dense", "var_if") == {"kind": "random_init", "checkpoint": "dense", "task": "var_if"}
    assert control_of("dense", "var_if__shuffled") == {"kind": "shuffled", "checkpoint": "dense", "task": "var_if"}
    assert control_of("dense", "var_if") is None


def test_every_pruned_trained_checkpoint_gets_its_control_the_matched_dense_one_too():
    config = resolve_config(
        "tiny", assignments=['prune.checkpoints=["pretrain", "matched_dense"]', 'prune.controls=["random_init"]'],
        environ={},
    )  # fmt: skip
    registry = default_registry()
    cells = registry.list_cells(config, registry.order)
    assert [c.cell for c in cells["random_init"]] == ["pretrain/tiny", "matched_dense/tiny"]
    pruned = {c.cell.split(":")[0] for c in cells["prune"]}
    assert {"random_init/pretrain/tiny", "random_init/matched_dense/tiny"} <= pruned
