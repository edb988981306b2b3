"""The ways a task can fail to produce usable data, one class each."""

from __future__ import annotations


class TaskError(Exception):
    """Base class: something about a task or its data is wrong."""


class UnknownTaskError(TaskError, KeyError):
    def __init__(self, name: str, known: list[str]):
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Known tasks: {', '.join(known)}."
        super().__init__(f"unknown task {name!r}.{hint}")

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class CandidateNotSingleTokenError(TaskError):
    def __init__(self, task: str, candidate: str, pieces: list[str]):
        self.task, self.candidate, self.pieces = task, candidate, pieces
        super().__init__(
            f"task {task}: candidate {candidate!r} is {len(pieces)} tokens {pieces} under this tokenizer, "
            "but a candidate must be exactly one token: the task needs a candidate string this tokenizer "
            "encodes as one token (or a tokenizer trained on more Python code)"
        )


class TokenBoundaryError(TaskError):
    """Appending the candidate re-tokenizes the end of the prompt (a BPE merge across the boundary)."""

    def __init__(self, task: str, prompt: str, candidate: str, detail: str):
        super().__init__(
            f"task {task}: prompt ending {prompt[-40:]!r} followed by {candidate!r} does not tokenize as "
            f"prompt tokens + [candidate]: {detail}. The generator must end prompts where a token boundary falls."
        )


class PromptTooLongError(TaskError):
    def __init__(self, task: str, needed: int, budget: int):
        super().__init__(
            f"task {task}: the shortest prompt this pair allows is {needed} tokens, over the budget of {budget} "
            "prompt tokens; raise max_tokens"
        )


class PoolExhaustedError(TaskError):
    def __init__(self, pool: str, split: str, wanted: int, available: int):
        super().__init__(
            f"identifier pool {pool!r} has only {available} usable names in split {split!r}, "
            f"{wanted} wanted; add words to the pool in tasks/identifiers.py"
        )
