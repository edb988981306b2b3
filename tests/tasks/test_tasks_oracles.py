"""The rule-based oracles read only the prompt text and solve every pair of every split."""

from __future__ import annotations

import pytest

from sparsepipe.tasks import SPLITS, task_names
from sparsepipe.tasks.oracles import ORACLES, OracleError, oracle_accuracy, scan, split_top_level


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", task_names())
def test_oracle_solves_every_prompt(name, split, pairs):
    assert oracle_accuracy(name, pairs(name, split)) == 1.0


@pytest.mark.parametrize("name", task_names())
def test_oracle_fails_every_prompt_when_the_candidates_are_swapped(name, pairs):
    oracle = ORACLES[name]
    for pair in pairs(name, "test")[:20]:
        swapped = (pair.candidate_b, pair.candidate_a)
        assert [oracle(prompt, swapped) for prompt in pair.prompts] == [1, 0]


def test_scan_tracks_strings_comments_and_brackets():
    lines = [
        'x = {"a": [1, ")"],  # ] in a comment',
        '  \'b\': """ [ """, \'it\\\'s\', f"{y}"',
        "print(r'\\'')",
        'z = (f"still open',
    ]
    result = scan("\n".join(lines))
    assert result.brackets == ["{", "("]
    assert (result.open_string_prefix, result.open_string_quote) == ("f", '"')


def test_scan_rejects_unbalanced_code():
    with pytest.raises(OracleError):
        scan("x = [1, 2)")


def test_split_top_level_ignores_nested_commas():
    assert split_top_level('a, b=(1, 2), c=",", d') == ["a", "b=(1, 2)", 'c=","', "d"]
