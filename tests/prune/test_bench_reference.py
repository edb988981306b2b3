"""`bench_reference` without the reimplementation's code: its command line, its tree check, the stand-in for their
type-only `transformers` import, and our side of the comparison (their task interface over our pairs, their config
from ours)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from sparsepipe.workers.prune.bench import tiny_settings
from sparsepipe.workers.prune.bench_reference import (
    REFERENCE_FILES,
    PairTask,
    ReferenceTreeError,
    check_reference,
    parse_args,
    reference_settings,
    shim_transformers,
)
from sparsepipe.workers.prune.bench_setup import key_task


def fake_tree(root):
    for name in REFERENCE_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return root


def test_reference_is_required(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args([])
    assert exit_.value.code == 2
    assert "--reference" in capsys.readouterr().err


def test_a_missing_folder_exits_2_with_the_reason(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--reference", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2
    assert "no such folder" in capsys.readouterr().err


def test_a_folder_that_is_not_their_tree_exits_2_naming_what_is_missing(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/model.py").write_text("")
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--reference", str(tmp_path), "--steps", "5"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "not an export of jacobcd52/sparse_pretrain_public" in err
    assert "src/pruning/trainer.py" in err and "src/model.py" not in err.split("missing")[1]
    assert "git -C <mirror> archive HEAD" in err


def test_their_tree_is_accepted(tmp_path):
    root = fake_tree(tmp_path)
    assert check_reference(root) == root
    args = parse_args(["--reference", str(root), "--steps", "20", "--rounds", "1", "--json"])
    assert (args.steps, args.rounds, args.json) == (20, 1, True)
    with pytest.raises(ReferenceTreeError):
        check_reference(root / "src")


def test_bad_counts_exit_2(tmp_path):
    root = fake_tree(tmp_path)
    for flags in (["--steps", "0"], ["--rounds", "0"]):
        with pytest.raises(SystemExit) as exit_:
            parse_args(["--reference", str(root), *flags])
        assert exit_.value.code == 2


def test_transformers_stub_stands_in_only_where_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    assert shim_transformers() is True
    assert isinstance(sys.modules["transformers"].PreTrainedTokenizer, type)
    monkeypatch.setitem(sys.modules, "transformers", types.ModuleType("transformers"))
    assert shim_transformers() is False


def test_pair_task_in_order_reads_every_prompt_once_per_probe():
    batch = key_task(6, seed=0, vocab=64, max_len=16)
    task = PairTask(batch, shuffle=False)
    per_probe = task.n_batches(4)
    assert per_probe == 3
    seen = []
    for _ in range(per_probe):
        positive, negative, correct, incorrect, eval_pos = task.generate_batch(4, 0)
        assert positive.shape[0] == 4 and positive.shape[1] == int(eval_pos.max()) + 1
        assert torch.equal(negative, positive[[1, 0, 3, 2]])
        seen.append(positive)
    assert task.calls == 3
    rows = torch.cat([torch.nn.functional.pad(p, (0, 16 - p.shape[1])) for p in seen])
    assert torch.equal(rows, batch.tokens)  # every prompt once, in order
    assert task.generate_batch(4, 0)[0].shape[0] == 4  # and around again


def test_pair_task_answers_are_the_candidates_and_padding_is_the_pad_token():
    batch = key_task(4, seed=1, vocab=64, max_len=16)
    positive, _, correct, incorrect, eval_pos = PairTask(batch, shuffle=False).generate_batch(8, 20)
    assert positive.shape == (8, 20) and (positive[:, 16:] == batch.pad_id).all()
    assert torch.equal(correct, batch.correct_ids) and torch.equal(incorrect, batch.wrong_ids)
    assert torch.equal(eval_pos, batch.eval_pos)
    with pytest.raises(ValueError, match="even"):
        PairTask(batch, shuffle=False).generate_batch(3, 0)


def test_pair_task_shuffled_draws_whole_pairs_from_its_seed():
    batch = key_task(32, seed=2, vocab=64, max_len=16)
    first = PairTask(batch, shuffle=True, seed=3).generate_batch(8, 16)[0]
    again = PairTask(batch, shuffle=True, seed=3).generate_batch(8, 16)[0]
    assert torch.equal(first, again)
    # both prompts of a pair differ only at the key
    assert ((first[0::2] != first[1::2]).sum(dim=1) == 1).all()


def test_their_config_carries_our_settings():
    settings = tiny_settings(steps=40)
    fake = types.SimpleNamespace(pruning_config=types.SimpleNamespace(PruningConfig=types.SimpleNamespace))
    config = reference_settings(fake, settings)
    hyper = settings.hyper
    assert config.num_steps == 40 and config.batch_size == 2 * settings.batch_pairs
    assert config.beta2 == pytest.approx(1 - hyper.inv_beta2)
    assert (config.lr, config.k_coef, config.weight_decay) == (hyper.lr, hyper.k_coef, hyper.wd)
    assert config.lr_warmup_frac == hyper.lr_warmup_frac and config.grad_clip_norm == settings.grad_clip
    assert config.use_binary_loss and config.ablation_type == "mean_pretrain" and config.device == "cpu"
