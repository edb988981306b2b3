"""bracket_counting as in the paper: the two prompts differ only in whether the open list is nested."""

from __future__ import annotations

import pytest

from sparsepipe.tasks import get_task
from sparsepipe.tasks.tokenization import ApproximateMeasure


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_prompts_differ_only_in_the_nesting_of_the_open_list(split):
    task = get_task("bracket_counting")
    for pair in task.make_pairs(split, 40, seed=3, measure=ApproximateMeasure(), budget=100):
        head, sep, tail = pair.prompt_b.rpartition(" = [")
        assert sep, pair.prompt_b
        assert pair.prompt_a == f"{head} = [[{tail}"
        # Nothing before the last list tells the depth: the open list is the only unclosed bracket.
        assert "[" not in tail and "]" not in tail
        assert head.count("[") == head.count("]")
        assert (pair.candidate_a, pair.candidate_b) == ("]", "]\n")


def test_no_grid_templates():
    names = [template.name for template in get_task("bracket_counting").templates.all]
    assert names and not any("grid" in name for name in names)
