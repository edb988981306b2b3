"""The 20 binary next-token tasks of "Weight-sparse transformers have interpretable circuits" (Table 1).

Each task generates pairs of realistic Python prompts that differ minimally; the
difference decides which of two candidate tokens comes next.  Typical use:

    from sparsepipe.tasks import load_task, task_loss, task_accuracy
    batch = load_task("bracket_counting", "path/to/tokenizer.json", split="train", n_pairs=64)
    logits, _ = model(batch.tokens)            # [2N, T, V]
    loss = task_loss(logits, batch)            # two-way cross-entropy, differentiable

See `dataset.py` for the tensor layout, `registry.py` for the task list (and `variants.py` for their control twins) and
`oracles.py` for rule-based solvers that prove each pair decidable.
"""

from .base import PromptPair, Task
from .dataset import DEFAULT_MAX_TOKENS, TaskBatch, encode_pairs, generate_pairs, load_task
from .errors import (
    CandidateNotSingleTokenError,
    PoolExhaustedError,
    PromptTooLongError,
    TaskError,
    TokenBoundaryError,
    UnknownTaskError,
)
from .loss import candidate_logits, task_accuracy, task_loss
from .registry import TASKS, TWINS, all_task_names, get_task, task_names
from .splits import SPLITS, Split
from .tokenization import load_tokenizer

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "SPLITS",
    "TASKS",
    "TWINS",
    "CandidateNotSingleTokenError",
    "PoolExhaustedError",
    "PromptPair",
    "PromptTooLongError",
    "Split",
    "Task",
    "TaskBatch",
    "TaskError",
    "TokenBoundaryError",
    "UnknownTaskError",
    "all_task_names",
    "candidate_logits",
    "encode_pairs",
    "generate_pairs",
    "get_task",
    "load_task",
    "load_tokenizer",
    "task_accuracy",
    "task_loss",
    "task_names",
]
