"""Task data as tensors: `load_task` and `TaskBatch`.

Layout of a `TaskBatch` of N pairs (2N rows):

    tokens      [2N, T] int64   prompt tokens, right-padded with `pad_id`; rows 2i and 2i+1
                                are prompt A and prompt B of pair i
    eval_pos    [2N]    int64   index of each row's last prompt token: the logits there
                                predict the candidate
    candidates  [2N, 2] int64   token ids [candidate A, candidate B], the same for both rows
                                of a pair
    correct     [2N]    int64   which column of `candidates` is right: 0 on A rows, 1 on B rows (the other
                                way round on the pairs a derived task swaps: `variants.py`)

By default each prompt starts with `<|endoftext|>`, as every document does in
the packed pretraining stream, and `pad_id` is that token.  A prompt plus its
candidate fits in `max_tokens`.

Every candidate is checked to be one token (`CandidateNotSingleTokenError`
otherwise), and every prompt to tokenize the same with its candidate appended
(`TokenBoundaryError`), so the token read at `eval_pos` is exactly the
prediction the task asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch
from tokenizers import Tokenizer
from torch import Tensor

from .base import PromptPair
from .errors import CandidateNotSingleTokenError, TokenBoundaryError
from .registry import TWINS, get_task
from .splits import Split, check_split
from .tokenization import TokenizerMeasure, eot_id, load_tokenizer

DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class TaskBatch:
    task: str
    split: str
    tokens: Tensor
    eval_pos: Tensor
    candidates: Tensor
    correct: Tensor
    pad_id: int
    pairs: tuple[PromptPair, ...]

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def correct_ids(self) -> Tensor:
        """[2N] the right candidate's token id for each row."""
        return self.candidates.gather(1, self.correct[:, None]).squeeze(1)

    @property
    def wrong_ids(self) -> Tensor:
        return self.candidates.gather(1, (1 - self.correct)[:, None]).squeeze(1)

    def to(self, device: str | torch.device) -> "TaskBatch":
        return replace(
            self,
            tokens=self.tokens.to(device),
            eval_pos=self.eval_pos.to(device),
            candidates=self.candidates.to(device),
            correct=self.correct.to(device),
        )

    def select(self, pair_indices: Sequence[int] | Tensor) -> "TaskBatch":
        """The sub-batch of these pairs (both rows of each), trimmed to its longest prompt."""
        pairs = torch.as_tensor(pair_indices, dtype=torch.long).reshape(-1)
        rows = torch.stack([2 * pairs, 2 * pairs + 1], dim=1).reshape(-1).to(self.tokens.device)
        eval_pos = self.eval_pos[rows]
        width = int(eval_pos.max()) + 1 if len(rows) else 0
        return replace(
            self,
            tokens=self.tokens[rows, :width],
            eval_pos=eval_pos,
            candidates=self.candidates[rows],
            correct=self.correct[rows],
            pairs=tuple(self.pairs[int(i)] for i in pairs),
        )


def _as_tokenizer(tokenizer: Tokenizer | str | Path) -> Tokenizer:
    return tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer)


def single_token_id(measure: TokenizerMeasure, task: str, candidate: str) -> int:
    ids = measure.encode(candidate)
    if len(ids) != 1:
        raise CandidateNotSingleTokenError(task, candidate, [measure.decode_one(i) for i in ids])
    return ids[0]


def encode_prompt(measure: TokenizerMeasure, task: str, prompt: str, candidate_id: int, candidate: str) -> list[int]:
    """The prompt's tokens, after checking that appending the candidate only appends its id."""
    ids = measure.encode(prompt)
    joined = measure.encode(prompt + candidate)
    if joined != ids + [candidate_id]:
        prompt_end, joined_end = [measure.decode_one(i) for i in ids[-3:]], [measure.decode_one(i) for i in joined[-4:]]
        detail = f"prompt ends {prompt_end}, joined ends {joined_end}"
        raise TokenBoundaryError(task, prompt, candidate, detail)
    return ids


def encode_pairs(
    task: str,
    split: str,
    pairs: Sequence[PromptPair],
    tokenizer: Tokenizer,
    prepend_eot: bool = True,
    measure: TokenizerMeasure | None = None,
) -> TaskBatch:
    """Tensors for already generated pairs (see the module docstring for the layout).

    `measure`: reuse the generator's (and its encoding cache) instead of a fresh one.
    """
    measure = measure or TokenizerMeasure(tokenizer)
    eot = eot_id(tokenizer)
    if prepend_eot and eot is None:
        raise ValueError("prepend_eot=True needs a tokenizer with an <|endoftext|> token")
    pad_id = eot if eot is not None else 0
    rows, candidate_rows = [], []
    for pair in pairs:
        ids = [single_token_id(measure, task, c) for c in pair.candidates]
        for prompt, candidate, candidate_id in zip(pair.prompts, pair.candidates, ids):
            prompt_ids = encode_prompt(measure, task, prompt, candidate_id, candidate)
            rows.append(([eot] if prepend_eot else []) + prompt_ids)
            candidate_rows.append(ids)
    width = max((len(r) for r in rows), default=0)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return TaskBatch(
        task=task,
        split=split,
        tokens=tokens,
        eval_pos=torch.tensor([len(r) - 1 for r in rows], dtype=torch.long),
        candidates=torch.tensor(candidate_rows, dtype=torch.long).reshape(len(rows), 2),
        correct=answers(task, pairs),
        pad_id=pad_id,
        pairs=tuple(pairs),
    )


def answers(task: str, pairs: Sequence[PromptPair]) -> Tensor:
    """[2N] the correct column of each row: 0 on A rows and 1 on B rows, the other way round on the pairs a
    derived task swaps (`variants.TaskTwin`)."""
    twin = TWINS.get(task)
    flips = torch.tensor([twin is not None and twin.swapped(pair) for pair in pairs], dtype=torch.long)
    return (torch.arange(2 * len(pairs), dtype=torch.long) % 2) ^ flips.repeat_interleave(2)


def prompt_budget(max_tokens: int, prepend_eot: bool) -> int:
    """Most tokens a prompt may have so that [EOT] + prompt + candidate fits in `max_tokens`."""
    return max_tokens - 1 - int(prepend_eot)


def generate_pairs(
    name: str,
    tokenizer: Tokenizer,
    split: Split,
    n_pairs: int,
    seed: int,
    max_tokens: int,
    prepend_eot: bool = True,
    measure: TokenizerMeasure | None = None,
) -> list[PromptPair]:
    """The pairs of `load_task`, as text."""
    measure = measure or TokenizerMeasure(tokenizer)
    return get_task(name).make_pairs(check_split(split), n_pairs, seed, measure, prompt_budget(max_tokens, prepend_eot))


def load_task(
    name: str,
    tokenizer: Tokenizer | str | Path,
    split: Split = "train",
    n_pairs: int = 64,
    seed: int = 0,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    prepend_eot: bool = True,
) -> TaskBatch:
    """N pairs of task `name` as tensors.

    `tokenizer`: a `tokenizers.Tokenizer` or the path of a `tokenizer.json`.  Pair i depends only
    on (name, split, seed, max_tokens, i) and the tokenizer, so a larger `n_pairs` extends a
    smaller one.
    """
    tokenizer = _as_tokenizer(tokenizer)
    measure = TokenizerMeasure(tokenizer)
    pairs = generate_pairs(name, tokenizer, split, n_pairs, seed, max_tokens, prepend_eot, measure)
    return encode_pairs(name, split, pairs, tokenizer, prepend_eot, measure)
