"""English for string literals, comments and docstrings.

Phrases are templates (split three ways like every other template) filled with
nouns and verbs from the split's identifier pools, so the text inside strings
reads like real messages ("could not load config") and never crosses splits.
Every phrase ends with a letter: a prompt may end inside a message, and a
trailing punctuation mark would fuse with the candidate token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .identifiers import VARIABLES, VERBS
from .splits import Template, Templates

if TYPE_CHECKING:
    from .context import PairContext

MESSAGES: Templates[str] = Templates(
    "messages",
    [
        Template(text, text)
        for text in (
            "could not {verb} {noun}",
            "failed to {verb} the {noun}",
            "unable to {verb} {noun}",
            "cannot {verb} {noun} without {noun2}",
            "invalid {noun}",
            "unknown {noun}",
            "missing {noun}",
            "{noun} not found",
            "{noun} is empty",
            "{noun} is required",
            "{noun} must not be empty",
            "no {noun} given",
            "{noun} and {noun2} do not match",
            "too many {noun}",
            "{noun} already exists",
            "expected a {noun}",
            "{verb} {noun} first",
            "the {noun} has no {noun2}",
            "done with {noun}",
            "skipping {noun}",
            "{noun} out of range",
            "bad {noun} for {noun2}",
            "{noun} is not a {noun2}",
            "waiting for {noun}",
            "{verb} the {noun} again",
            "could not find a {noun} in {noun2}",
            "{noun} changed while {noun2} was open",
        )
    ],
)

DOCSTRINGS: Templates[str] = Templates(
    "docstrings",
    [
        Template(text, text)
        for text in (
            "{Verb} the {noun}.",
            "{Verb} {noun} from {noun2}.",
            "Return the {noun} of the {noun2}.",
            "Return the {noun}, or None when there is no {noun2}.",
            "{Verb} every {noun} in the {noun2}.",
            "Check that the {noun} is valid.",
            "Helper to {verb} the {noun}.",
            "{Verb} and return the {noun}.",
            "{Verb} the {noun} in place.",
            "The {noun} for this {noun2}.",
            "Return True if the {noun} has a {noun2}.",
            "{Verb} the {noun} and the {noun2}.",
            "Return a new {noun} built from the {noun2}.",
            "{Verb} each {noun}; ignore a missing {noun2}.",
            "Return how many {noun} the {noun2} has.",
        )
    ],
)


def _fill(ctx: "PairContext", text: str) -> str:
    verb = ctx.filler_name(VERBS)
    return text.format(
        verb=verb, Verb=verb.capitalize(), noun=ctx.filler_name(VARIABLES), noun2=ctx.filler_name(VARIABLES)
    )


def message(ctx: "PairContext") -> str:
    """A short message for a string literal or a comment, ending with a letter."""
    return _fill(ctx, ctx.template(MESSAGES))


def docstring_text(ctx: "PairContext") -> str:
    return _fill(ctx, ctx.template(DOCSTRINGS))
