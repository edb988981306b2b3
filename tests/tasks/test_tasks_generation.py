"""Generators: deterministic, minimal pairs, varied, within budget; splits: disjoint identifiers, train templates
apart from the held-out ones that val and test share."""

from __future__ import annotations

from itertools import combinations

import pytest

from sparsepipe.tasks import SPLITS, TASKS, generate_pairs, get_task, task_names
from sparsepipe.tasks.checks import prompt_difference, used_templates
from sparsepipe.tasks.identifiers import (
    CLASS_NAMES,
    FILE_STEMS,
    MODULES,
    READ_WRITE_PREFIXES,
    SHORT_NAMES,
    VARIABLES,
    VERBS,
)
from sparsepipe.tasks.prose import DOCSTRINGS, MESSAGES
from sparsepipe.tasks.snippets import MEMBERS, MODULE_BLOCKS, STATEMENTS

TABLE_1 = [
    "single_double_quote", "final_kwarg", "set_or_string", "set_or_string_fixedvarname", "class_init", "with_as",
    "bracket_brace", "with_open", "bracket_counting", "for_while", "else_elif", "fstring_brace", "if_ternary",
    "var_swap", "indent_for", "lambda_func", "if_equals", "enumerate_range", "var_if", "while_return_true",
]  # fmt: skip

ALL = pytest.mark.parametrize("name", task_names())


def test_registry_holds_the_20_tasks_of_table_1():
    assert task_names() == TABLE_1
    assert all(TASKS[name].name == name for name in TABLE_1)


@ALL
def test_same_seed_same_pairs_other_seed_other_pairs(name, tokenizer, pairs):
    again = generate_pairs(name, tokenizer, "val", 10, pairs.seed, pairs.max_tokens)
    assert again == pairs(name, "val")[:10]
    assert generate_pairs(name, tokenizer, "val", 10, pairs.seed + 1, pairs.max_tokens) != again


@ALL
def test_prompts_of_a_pair_differ_minimally(name, tokenizer, pairs):
    """Only the discriminating span differs: a few pre-tokens, everything else shared."""
    task = get_task(name)
    for split in SPLITS:
        for pair in pairs(name, split):
            assert pair.prompt_a != pair.prompt_b
            assert 1 <= prompt_difference(tokenizer, pair) <= task.max_diff_pretokens, pair


@ALL
def test_prompts_fit_the_budget_and_vary_in_length(name, pairs):
    measure = pairs.measure
    lengths = [measure.count(p) for pair in pairs(name, "train") for p in pair.prompts]
    assert max(lengths) <= pairs.max_tokens - 2  # room for <|endoftext|> and the candidate
    assert max(lengths) - min(lengths) >= 100  # surrounding code makes short and long prompts


@ALL
def test_pairs_use_several_templates_and_names(name, pairs):
    train = pairs(name, "train")
    core = {t for pair in train for t in pair.templates if t.startswith(f"{get_task(name).templates.family}:")}
    assert len(core) >= 2
    assert len({pair.prompts for pair in train}) == len(train)


@ALL
def test_splits_share_no_identifier_and_train_no_template(name, pairs):
    names = {split: {i for p in pairs(name, split) for i in p.identifiers} for split in SPLITS}
    for a, b in combinations(SPLITS, 2):
        assert not names[a] & names[b], (a, b, sorted(names[a] & names[b])[:5])
    train = used_templates(pairs(name, "train"))
    held_out = used_templates(pairs(name, "val")) | used_templates(pairs(name, "test"))
    assert not train & held_out, sorted(train & held_out)[:5]


@ALL
def test_val_and_test_share_template_families_and_no_identifier(name, pairs):
    """Val sees every held-out template that test measures (selection on val can catch a circuit that fails
    one), and the two splits are told apart by their pairs, with disjoint identifiers."""
    family = get_task(name).templates.family
    val, test = pairs(name, "val"), pairs(name, "test")
    held_out = {f"{family}:{t.name}" for t in get_task(name).templates.part("test")}
    assert used_templates(val, family) == used_templates(test, family) == held_out
    assert not {i for p in val for i in p.identifiers} & {i for p in test for i in p.identifiers}
    # A prompt with no identifier at all (the shortest set_or_string_fixedvarname prompt, its name fixed) can be
    # drawn in both: 1 of 200 pairs measured.
    assert len({p.prompts for p in val} & {p.prompts for p in test}) <= len(test) // 100


@pytest.mark.parametrize(
    "pool", [VARIABLES, SHORT_NAMES, VERBS, CLASS_NAMES, MODULES, READ_WRITE_PREFIXES, FILE_STEMS], ids=lambda p: p.name
)
def test_identifier_pools_split_into_disjoint_nonempty_parts(pool):
    parts = [set(pool.part(split)) for split in SPLITS]
    assert all(parts)
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == len(pool.words)


@pytest.mark.parametrize(
    "templates",
    [STATEMENTS, MODULE_BLOCKS, MEMBERS, MESSAGES, DOCSTRINGS] + [t.templates for t in TASKS.values()],
    ids=lambda t: t.family,
)
def test_template_lists_split_into_train_and_held_out(templates):
    train, val, test = ({t.name for t in templates.part(split)} for split in SPLITS)
    assert train and val and val == test
    assert not train & val
    assert len(train) + len(val) == len(templates.all)


def test_a_larger_request_extends_a_smaller_one(tokenizer, pairs):
    assert (
        generate_pairs("var_swap", tokenizer, "test", 5, pairs.seed, pairs.max_tokens) == pairs("var_swap", "test")[:5]
    )
