"""Derived tasks (control twins): same prompts and candidates as their base task, a transformed answer."""

from __future__ import annotations

import pytest
import torch

from sparsepipe.tasks import TASKS, TWINS, all_task_names, encode_pairs, get_task, task_accuracy, task_names
from sparsepipe.tasks.errors import UnknownTaskError
from sparsepipe.tasks.variants import shuffled_swap

BASES = ("single_double_quote", "bracket_counting", "var_swap")


def solver_logits(batch, base) -> torch.Tensor:
    """[2N, V] logits of a model that solves the base task: its correct candidate 1 logit above the other."""
    logits = torch.zeros(len(batch), int(batch.candidates.max()) + 1)
    rows = torch.arange(len(batch))
    logits[rows, base.correct_ids] = 1.0
    return logits


def test_the_registry_holds_twins_beside_table_1():
    assert len(task_names()) == 20 and set(task_names()) == set(TASKS)  # Table 1 unchanged
    assert all_task_names() == [*task_names(), *TWINS]
    assert len(TWINS) == 40
    twin = get_task("var_swap__flipped")
    assert twin.name == "var_swap__flipped" and twin.base is TASKS["var_swap"]
    with pytest.raises(UnknownTaskError):
        get_task("var_swap__reversed")


@pytest.mark.parametrize("name", BASES)
def test_flipped_twin_always_answers_the_other_candidate(name, pairs, tokenizer):
    base_pairs = pairs(name, "test")
    twin_pairs = get_task(f"{name}__flipped").make_pairs("test", 50, pairs.seed, pairs.measure, 254)
    assert twin_pairs == get_task(name).make_pairs("test", 50, pairs.seed, pairs.measure, 254) == base_pairs[:50]
    base = encode_pairs(name, "test", twin_pairs, tokenizer)
    flipped = encode_pairs(f"{name}__flipped", "test", twin_pairs, tokenizer)
    assert torch.equal(base.tokens, flipped.tokens) and torch.equal(base.candidates, flipped.candidates)
    assert torch.equal(flipped.correct, 1 - base.correct)
    assert float(task_accuracy(solver_logits(flipped, base), flipped)) == 0.0


@pytest.mark.parametrize("name", BASES)
def test_shuffled_twin_is_chance_for_a_model_that_solves_the_task(name, pairs, tokenizer):
    pair_list = pairs(name, "val")
    base = encode_pairs(name, "val", pair_list, tokenizer)
    shuffled = encode_pairs(f"{name}__shuffled", "val", pair_list, tokenizer)
    swaps = torch.tensor([shuffled_swap(name, pair) for pair in pair_list])
    # Per pair: the real answer or the other one, decided by the pair's hash alone (the same on every call).
    assert torch.equal(shuffled.correct, base.correct ^ swaps.long().repeat_interleave(2))
    accuracy = float(task_accuracy(solver_logits(shuffled, base), shuffled))
    # 200 pairs; a fair coin lands outside [0.38, 0.62] with probability < 0.1%.
    assert 0.38 <= accuracy <= 0.62, accuracy
    # The two prompts of a pair still have different answers: the twin is a task about the pair's difference.
    assert torch.all(shuffled.correct[0::2] != shuffled.correct[1::2])


def test_the_shuffled_coin_depends_on_the_pair_not_its_position(pairs):
    pair_list = pairs("var_swap", "train")[:40]
    coins = [shuffled_swap("var_swap", p) for p in pair_list]
    assert coins == [shuffled_swap("var_swap", p) for p in reversed(pair_list)][::-1]
    assert 0 < sum(coins) < len(coins)
