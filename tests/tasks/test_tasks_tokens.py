"""Tokenization: single-token candidates, clean prompt/candidate boundaries, natural continuations."""

from __future__ import annotations

import pytest

from sparsepipe.tasks import (
    SPLITS,
    CandidateNotSingleTokenError,
    PromptPair,
    TokenBoundaryError,
    encode_pairs,
    task_names,
)
from sparsepipe.tasks.checks import is_natural
from sparsepipe.tasks.codegen import indentation_token

ALL = pytest.mark.parametrize("name", task_names())

# The fixed candidates the tasks were designed around (paper Table 1 and Appendix A.7, adapted
# to the tinypython pre-tokenizer): each must be one token of a 2048-token stdlib BPE.
DESIGNED_CANDIDATES = [
    '")\n', "')\n", "=None", "):\n", ".add", " +=", ")", ")\n", '":', '",', "':", "',", "r", "w", "]", "]\n",
    " in", ":\n", " not", " {", " else", ":", "():\n", " ==", " =", " range", "\n",
] + [indentation_token(columns) for columns in (4, 8, 12, 16, 20)]  # fmt: skip


@pytest.mark.parametrize("candidate", DESIGNED_CANDIDATES, ids=repr)
def test_designed_candidates_are_single_tokens(candidate, tokenizer):
    assert len(tokenizer.encode(candidate, add_special_tokens=False).ids) == 1


@ALL
def test_every_candidate_is_one_token(name, pairs):
    measure = pairs.measure
    for split in SPLITS:
        for pair in pairs(name, split):
            assert all(measure.is_single_token(c) for c in pair.candidates), pair.candidates


@ALL
def test_prompt_plus_candidate_tokenizes_as_prompt_then_candidate(name, pairs):
    measure = pairs.measure
    for split in SPLITS:
        for pair in pairs(name, split):
            for prompt, candidate in zip(pair.prompts, pair.candidates):
                assert measure.encode(prompt + candidate) == measure.encode(prompt) + measure.encode(candidate), (
                    prompt[-30:],
                    candidate,
                )


@ALL
def test_candidate_is_the_token_the_program_goes_on_with(name, pairs):
    measure = pairs.measure
    for split in SPLITS:
        for pair in pairs(name, split):
            for prompt, candidate, completion in zip(pair.prompts, pair.candidates, pair.completions):
                assert is_natural(measure, prompt, candidate, completion), (prompt[-30:], completion)


def test_a_multi_token_candidate_is_an_error_naming_task_and_string(tokenizer):
    pair = PromptPair("x = [1, 2", "x = [[1, 2", "]\n", "]]]]\n", "]\n", "]]]]\n")
    with pytest.raises(CandidateNotSingleTokenError, match=r"task bracket_counting: candidate '\]\]\]\]\\n'"):
        encode_pairs("bracket_counting", "train", [pair], tokenizer)


def test_a_candidate_that_merges_into_the_prompt_is_an_error(tokenizer):
    # "(" followed by '"' is one pre-token '("': the prompt's last token would change.
    pair = PromptPair("print(", "print(x", '"', ")\n", '"a")\n', ")\n")
    with pytest.raises(TokenBoundaryError, match="task single_double_quote"):
        encode_pairs("single_double_quote", "train", [pair], tokenizer)
