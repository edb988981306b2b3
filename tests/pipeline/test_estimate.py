"""`sparsepipe plan --estimate`: per-cell costs, the run's total, the fit check; `execution.require_gpus`."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.devices import GPUS, device, missing_gpus
from sparsepipe.workers.estimate import TrainShape, model_cost, training_cost
from sparsepipe.workers.nn.config import ModelConfig, TrainConfig
from sparsepipe.workers.nn.gpt import GPT
from sparsepipe.workers.stage import Cell, Resources

runner = CliRunner()


def estimate(tmp_path, *args: str):
    return runner.invoke(
        app, ["plan", "--estimate", "--json", "--preset", "smoke", "--store", str(tmp_path / "store"), *args]
    )


@pytest.mark.parametrize("options", [{}, {"pos_emb": "concat", "d_pos_emb": 8, "bigram_table": False}])
def test_parameter_count_is_the_models(options):
    model = ModelConfig(n_layer=2, d_model=32, n_head=4, d_head=8, n_ctx=16, vocab_size=300, **options)
    assert model_cost(model, 300).params == sum(p.numel() for p in GPT(model).parameters())


def test_data_parallel_workers_split_the_activations_and_bf16_halves_them():
    train = TrainConfig(model=ModelConfig(vocab_size=512), batch_size=64, steps=10)
    one = training_cost(TrainShape(train, 512), "cuda")
    four = training_cost(TrainShape(train, 512, workers=4), "cuda")
    assert four.activation_bytes == pytest.approx(one.activation_bytes / 4, rel=0.01)
    assert four.flops == one.flops and four.param_bytes == one.param_bytes
    bf16 = training_cost(TrainShape(train.model_copy(update={"precision": "bf16"}), 512), "cuda")
    assert bf16.bf16 and bf16.activation_bytes < one.activation_bytes


def test_microbatches_split_the_activations_and_bridges_pay_one_normaliser_forward(tmp_path):
    train = TrainConfig(model=ModelConfig(vocab_size=512), batch_size=64, steps=10)
    one = training_cost(TrainShape(train, 512), "cuda")
    four = training_cost(TrainShape(train.model_copy(update={"microbatches": 4}), 512), "cuda")
    assert four.activation_bytes == pytest.approx(one.activation_bytes / 4, rel=0.01)
    assert four.flops == one.flops and four.optimizer_bytes == one.optimizer_bytes

    cells = {}
    for microbatches in (1, 4):
        result = estimate(tmp_path, "--device", "h100", "--set", f"bridges.train.microbatches={microbatches}")
        assert result.exit_code == 0, result.output
        cells[microbatches] = next(c for c in json.loads(result.stdout)["cells"] if c["stage"] == "bridges")
    assert cells[4]["activation_bytes"] == pytest.approx(cells[1]["activation_bytes"] / 4, rel=0.01)
    assert 1 < cells[4]["flops"] / cells[1]["flops"] < 1.2  # the no-grad forward of both models per step


def test_smoke_estimate_lists_every_cell_with_a_total(tmp_path):
    result = estimate(tmp_path, "--device", "h100")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    cells = {(c["stage"], c["cell"]): c for c in data["cells"]}
    assert ("pretrain", "smoke") in cells and ("report", "") in cells
    pretrain = cells[("pretrain", "smoke")]
    assert pretrain["on"] == "gpu" and pretrain["flops"] > 0 and pretrain["memory_bytes"] > pretrain["param_bytes"]
    assert cells[("report", "")]["flops"] is None
    assert data["total_s"] >= data["critical_path_s"] > 0
    assert data["efficiency_measured"] is False and data["does_not_fit"] == []
    # Every prune cell is estimated, those of checkpoints chosen among trained ones (matched_dense) too.
    pruned = [c for (stage, _), c in cells.items() if stage == "prune"]
    assert any(c["cell"].startswith("matched_dense/") for c in pruned) and all(c["flops"] for c in pruned)


def test_a_cell_that_cannot_fit_is_exit_2_naming_the_setting(tmp_path):
    result = estimate(tmp_path, "--device", "a100", "--set", "pretrain.train.batch_size=400000")
    assert result.exit_code == 2
    assert "does not fit: pretrain/smoke" in result.stderr
    assert "one a100 has 80.0 GB: raise pretrain.train.microbatches" in result.stderr  # the same training first
    assert "raise execution.train_workers, or lower pretrain.train.batch_size" in result.stderr


def test_unknown_device_is_a_usage_error(tmp_path):
    result = estimate(tmp_path, "--device", "tpu")
    assert result.exit_code == 2 and "known: cpu, a100, h100, h200" in result.stderr


def test_table_and_total_on_the_cpu(tmp_path):
    result = runner.invoke(app, ["plan", "--estimate", "--preset", "smoke", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert "estimate on cpu" in result.stdout and "total:" in result.stdout and "(measured)" in result.stdout


def test_gpus_asked_for_without_one_is_exit_5_at_plan_time(tmp_path):
    cells = [Cell("pretrain", "x", {}, resources=Resources(num_gpus=1.0))]
    assert "execution.require_gpus" in missing_gpus(cells, 0) and missing_gpus(cells, 1) == ""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = runner.invoke(
        app,
        ["plan", "--preset", "smoke", "--store", str(tmp_path / "store"), "--set", "execution.require_gpus=true"],
    )
    assert result.exit_code == 5 and "pretrain/smoke" in result.stderr


def test_device_table():
    assert set(GPUS) == {"a100", "h100", "h200"}
    assert device("H200").memory > device("h100").memory
    assert device("cpu").measured and not device("h100").measured
