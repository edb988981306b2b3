"""load_task tensors, the two-way task loss and accuracy, evaluation of a model."""

from __future__ import annotations

import math

import pytest
import torch

from sparsepipe.tasks import (
    PromptTooLongError,
    TaskBatch,
    UnknownTaskError,
    load_task,
    task_accuracy,
    task_loss,
    task_names,
)
from sparsepipe.tasks.evaluation import evaluate_model, logits_at_eval
from sparsepipe.tasks.loss import candidate_logits

EOT = 2047


@pytest.fixture(scope="module")
def batch(tokenizer) -> TaskBatch:
    return load_task("single_double_quote", tokenizer, split="val", n_pairs=6, seed=3, max_tokens=96)


def test_layout_pairs_rows_eval_positions_and_padding(batch, tokenizer):
    assert batch.tokens.shape[0] == 12 and batch.tokens.dtype == torch.int64
    assert batch.tokens.shape[1] <= 95  # room for the candidate
    assert batch.correct.tolist() == [0, 1] * 6
    for row in range(12):
        pair, side = batch.pairs[row // 2], row % 2
        prompt_ids = tokenizer.encode(pair.prompts[side], add_special_tokens=False).ids
        end = int(batch.eval_pos[row]) + 1
        assert batch.tokens[row, :end].tolist() == [EOT] + prompt_ids
        assert (batch.tokens[row, end:] == batch.pad_id).all()
        expected = [
            tokenizer.token_to_id(tokenizer.encode(c, add_special_tokens=False).tokens[0]) for c in pair.candidates
        ]
        assert batch.candidates[row].tolist() == expected
        assert batch.correct_ids[row] == expected[side] and batch.wrong_ids[row] == expected[1 - side]


def test_load_task_accepts_a_tokenizer_path_and_is_deterministic(batch, tokenizer_path):
    again = load_task("single_double_quote", str(tokenizer_path), split="val", n_pairs=6, seed=3, max_tokens=96)
    assert torch.equal(again.tokens, batch.tokens) and again.pairs == batch.pairs


def test_without_eot_prompts_start_with_their_own_tokens(tokenizer):
    plain = load_task("var_if", tokenizer, "train", 2, max_tokens=64, prepend_eot=False)
    assert (plain.tokens[:, 0] != EOT).all()
    assert plain.tokens.shape[1] <= 63


def test_select_keeps_both_rows_of_each_pair(batch):
    part = batch.select([4, 1])
    assert part.pairs == (batch.pairs[4], batch.pairs[1])
    assert torch.equal(part.eval_pos, batch.eval_pos[[8, 9, 2, 3]])
    assert torch.equal(part.tokens, batch.tokens[[8, 9, 2, 3], : part.tokens.shape[1]])
    assert part.tokens.shape[1] == int(part.eval_pos.max()) + 1


def test_task_loss_matches_a_hand_computation(batch):
    V = 2048
    logits = torch.zeros(len(batch), V)
    # Pair 0: prompt A gives its right candidate logit 2 vs 0; prompt B gives its right one 0 vs 1.
    a_right, b_right = batch.candidates[0].tolist()
    logits[0, a_right] = 2.0
    logits[1, a_right] = 1.0  # on prompt B the wrong candidate is A's
    pair0 = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(1.0))) / 2
    # Every other prompt: both candidates 0 -> ln 2.
    expected = (2 * pair0 + (len(batch) - 2) * math.log(2)) / len(batch)
    assert task_loss(logits, batch).item() == pytest.approx(expected, rel=1e-6)
    per_prompt = task_loss(logits, batch, reduction="none")
    assert per_prompt[:2].tolist() == pytest.approx([math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(1.0))])
    # Ties count as wrong; prompt 0 is right, prompt 1 wrong, the rest tied.
    assert task_accuracy(logits, batch).item() == pytest.approx(1 / len(batch))


def test_loss_reads_full_logits_at_eval_positions_and_is_differentiable(batch):
    T, V = batch.tokens.shape[1], 2048
    full = torch.randn(len(batch), T, V, requires_grad=True)
    at_eval = full[torch.arange(len(batch)), batch.eval_pos]
    assert torch.equal(candidate_logits(full, batch), candidate_logits(at_eval, batch))
    task_loss(full, batch).backward()
    touched = full.grad.abs().sum(-1) > 0
    assert touched.sum() == len(batch) and touched[torch.arange(len(batch)), batch.eval_pos].all()


class CandidateOracleModel(torch.nn.Module):
    """Logits [B, T, V] that put +1 on the right candidate at each evaluation position (for tests)."""

    def __init__(self, batch: TaskBatch, n_ctx: int = 1024):
        super().__init__()
        self.answers = {
            tuple(row[: int(p) + 1].tolist()): int(c)
            for row, p, c in zip(batch.tokens, batch.eval_pos, batch.correct_ids)
        }
        self.config = type("Config", (), {"n_ctx": n_ctx})()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        logits = torch.zeros(*tokens.shape, 2048)
        for b, row in enumerate(tokens):
            for end in range(1, len(row) + 1):
                answer = self.answers.get(tuple(row[:end].tolist()))
                if answer is not None:
                    logits[b, end - 1, answer] = 1.0
        return logits, {}


def test_evaluate_model_scores_a_model_that_knows_the_answers(tokenizer):
    batch = load_task("for_while", tokenizer, "test", 4, seed=0, max_tokens=128)
    model = CandidateOracleModel(batch, n_ctx=128)
    assert torch.equal(logits_at_eval(model, batch, rows_per_call=3).argmax(-1), batch.correct_ids)
    [score] = evaluate_model(model, tokenizer, ["for_while"], "test", 4, 0)
    assert score.accuracy == 1.0 and score.loss == pytest.approx(math.log(1 + math.exp(-1.0)))


@pytest.mark.parametrize("name", task_names())
def test_every_task_fits_the_smallest_supported_context(name, tokenizer):
    batch = load_task(name, tokenizer, "test", 5, max_tokens=48)
    assert batch.tokens.shape[1] <= 47


def test_too_small_a_context_and_unknown_names_are_clear_errors(tokenizer):
    with pytest.raises(PromptTooLongError, match="task class_init: .* raise max_tokens"):
        load_task("class_init", tokenizer, "train", 1, max_tokens=12)
    with pytest.raises(UnknownTaskError, match="Did you mean bracket_counting"):
        load_task("bracket_countin", tokenizer)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_task("var_swap", tokenizer, split="dev")
