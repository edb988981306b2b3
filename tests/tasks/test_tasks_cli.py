"""`sparsepipe tasks` commands through typer's CliRunner."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from sparsepipe.pipeline import cli_tasks
from sparsepipe.tasks import task_names

runner = CliRunner()


def test_list_prints_every_task_and_json():
    result = runner.invoke(cli_tasks.app, ["list"])
    assert result.exit_code == 0 and "bracket_counting" in result.output
    rows = json.loads(runner.invoke(cli_tasks.app, ["list", "--json"]).output)
    assert [r["name"] for r in rows][:20] == task_names()
    twins = {r["name"]: r["derived_from"] for r in rows[20:]}
    assert twins["var_swap__flipped"] == "var_swap" and twins["var_swap__shuffled"] == "var_swap"
    assert len(twins) == 40


def test_show_marks_a_flipped_twins_other_candidate():
    base = runner.invoke(cli_tasks.app, ["show", "bracket_counting", "-n", "1"]).output
    flipped = runner.invoke(cli_tasks.app, ["show", "bracket_counting__flipped", "-n", "1"]).output
    right = [line for line in base.splitlines() if "right" in line]
    right_flipped = [line for line in flipped.splitlines() if "right" in line]
    assert right and len(right) == len(right_flipped) and right != right_flipped


def test_show_without_tokenizer_prints_raw_pairs():
    result = runner.invoke(cli_tasks.app, ["show", "var_swap", "-n", "2", "--split", "val"])
    assert result.exit_code == 0, result.output
    assert result.output.count("prompt A") == 2 and result.output.count("prompt B") == 2


def test_show_with_tokenizer_marks_candidates(tokenizer_path):
    result = runner.invoke(cli_tasks.app, ["show", "bracket_counting", "-n", "1", "--tokenizer", str(tokenizer_path)])
    assert result.exit_code == 0, result.output
    assert "right ']'" in result.output and "wrong ']\\n'" in result.output


def test_unknown_task_or_split_is_a_usage_error():
    result = runner.invoke(cli_tasks.app, ["show", "bracket_countin"])
    assert result.exit_code == 2 and "bracket_counting" in result.output
    assert runner.invoke(cli_tasks.app, ["show", "var_swap", "--split", "dev"]).exit_code == 2


def test_check_passes_with_the_stdlib_tokenizer(tokenizer_path):
    args = ["check", "--tokenizer", str(tokenizer_path), "-t", "with_as,var_swap", "--n-pairs", "15", "--json"]
    result = runner.invoke(cli_tasks.app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["task"] for r in rows] == ["with_as", "var_swap"] and all(r["ok"] for r in rows)


def test_check_fails_with_exit_code_1_when_a_candidate_is_not_one_token(tmp_path):
    from stdlib_bpe import train_stdlib_tokenizer

    small = tmp_path / "tokenizer.json"
    train_stdlib_tokenizer(vocab_size=300, budget_bytes=200_000).save(str(small))
    result = runner.invoke(cli_tasks.app, ["check", "--tokenizer", str(small), "-t", "set_or_string", "--n-pairs", "5"])
    assert result.exit_code == 1
    assert "'.add'" in result.output


def test_check_requires_an_existing_tokenizer(tmp_path):
    result = runner.invoke(cli_tasks.app, ["check", "--tokenizer", str(tmp_path / "missing.json")])
    assert result.exit_code == 2


def test_eval_scores_a_checkpoint(tokenizer_path, tmp_path):
    gpt = pytest.importorskip("sparsepipe.workers.nn.gpt")
    from sparsepipe.workers.nn.config import ModelConfig

    model = gpt.GPT(ModelConfig(n_layer=1, d_model=16, n_head=2, d_head=8, n_ctx=64, vocab_size=2048))
    gpt.save_checkpoint(model, tmp_path / "model")
    args = ["eval", "--checkpoint", str(tmp_path / "model"), "--tokenizer", str(tokenizer_path)]
    result = runner.invoke(cli_tasks.app, args + ["-t", "if_equals", "-t", "var_if", "--n-pairs", "4", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert [s["task"] for s in scores] == ["if_equals", "var_if"]
    assert all(math.isfinite(s["loss"]) and 0 <= s["accuracy"] <= 1 for s in scores)


def test_eval_table_through_the_documented_loader(tokenizer_path, monkeypatch):
    import torch

    monkeypatch.setattr(cli_tasks, "load_model", lambda path: lambda tokens: torch.zeros(*tokens.shape, 2048))
    result = runner.invoke(
        cli_tasks.app,
        ["eval", "--checkpoint", "x", "--tokenizer", str(tokenizer_path), "-t", "for_while", "--n-pairs", "2"],
    )
    assert result.exit_code == 0, result.output
    assert f"{math.log(2):.3f}" in result.output  # equal logits: two-way loss ln 2


# ------------------------------------------------------------ store references


def _commit_cells(store_dir, tokenizer_path, stages):
    """Commit stand-in artifacts for the smoke config's tokenize (and pretrain) cells, under their real keys."""
    import shutil

    from sparsepipe.pipeline.config import resolve_config
    from sparsepipe.pipeline.dag import Planner, default_registry
    from sparsepipe.pipeline.store import CommitRecord, StoreSpec
    from sparsepipe.workers.nn.config import ModelConfig
    from sparsepipe.workers.nn.gpt import GPT, save_checkpoint

    registry, store = default_registry(), StoreSpec(str(store_dir)).open()
    config = resolve_config("smoke", environ={})
    for stage in stages:
        (plan,) = [p for p in Planner(registry, store).plan(config, [stage]) if p.cell.stage == stage][:1]
        folder = store_dir.parent / f"{stage}_out"
        folder.mkdir()
        if stage == "tokenize":
            shutil.copy(tokenizer_path, folder / "tokenizer.json")
        else:
            save_checkpoint(
                GPT(ModelConfig(n_layer=1, d_model=16, n_head=2, d_head=8, n_ctx=128, vocab_size=2048)), folder
            )
        record = CommitRecord(stage=stage, key=plan.key, cell=plan.cell.cell, preimage=plan.preimage, parents={})
        store.commit(record, folder, 0)


def test_check_defaults_to_the_committed_tokenizer(tokenizer_path, tmp_path):
    _commit_cells(tmp_path / "store", tokenizer_path, ["tokenize"])
    args = [
        "check",
        "--preset",
        "smoke",
        "--store",
        str(tmp_path / "store"),
        "-t",
        "with_as",
        "--n-pairs",
        "5",
        "--json",
    ]
    result = runner.invoke(cli_tasks.app, args)
    assert result.exit_code == 0, result.output
    assert [r["task"] for r in json.loads(result.output)] == ["with_as"]
    by_reference = runner.invoke(cli_tasks.app, [*args, "--tokenizer", "tokenize"])
    assert by_reference.exit_code == 0 and by_reference.output == result.output


def test_eval_defaults_to_the_committed_checkpoints(tokenizer_path, tmp_path):
    _commit_cells(tmp_path / "store", tokenizer_path, ["tokenize", "pretrain"])
    base = ["eval", "--preset", "smoke", "--store", str(tmp_path / "store"), "-t", "var_if", "--n-pairs", "2"]
    result = runner.invoke(cli_tasks.app, [*base, "--checkpoints", "pretrain/smoke", "--json"])
    assert result.exit_code == 0, result.output
    assert [(s["checkpoint"], s["task"]) for s in json.loads(result.output)] == [("pretrain/smoke", "var_if")]
    # dense, bridges and the random-init controls are part of the smoke config but not committed: the error names
    # the command that builds the last of them
    missing = runner.invoke(cli_tasks.app, base)
    assert missing.exit_code == 2 and "sparsepipe run random_init" in missing.output
    assert "dense" in missing.output and "bridges/smoke" in missing.output
    assert runner.invoke(cli_tasks.app, [*base, "--checkpoints", "nosuch"]).exit_code == 2


def test_check_without_a_committed_tokenizer_is_a_usage_error(tmp_path):
    result = runner.invoke(cli_tasks.app, ["check", "--preset", "smoke", "--store", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "sparsepipe run tokenize" in result.output
