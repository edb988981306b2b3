"""Degenerate circuits are results: what a circuit of a target sweep is, when it is not an ordinary circuit.

A target sweep (paper Fig. 2) meets these at its edges, and each is an answer, not an error:

- "empty": the target is reached with no node kept: it is at or above the loss of the fully ablated model
  (or the task loss does not depend on the masks at all). Its losses are the ablated model's, and binarizing
  it changes nothing (its binarized loss is its own loss).
- "whole model": every mask entry is needed to reach the target.
- "not reached": even every node active after mask training misses the target (below the full model's
  loss, say); the circuit kept is that set of nodes, and there is nothing to binarize.
- "circuit": anything else.

Every phase of a prune cell (bisection, calibration, binarization, edges, the viewer and its activation
examples, the figures) runs on all of them; `TrialResult.circuit` and each sweep row's "circuit" say which.
"""

from __future__ import annotations

CIRCUIT, EMPTY, WHOLE_MODEL, NOT_REACHED = "circuit", "empty", "whole model", "not reached"


def circuit_kind(masks_kept: int, n_masks: int, reached_target: bool) -> str:
    """Which of the kinds above a bisection's circuit is (`masks_kept` of the `n_masks` mask entries)."""
    if not reached_target:
        return NOT_REACHED
    if masks_kept == 0:
        return EMPTY
    if masks_kept >= n_masks:
        return WHOLE_MODEL
    return CIRCUIT


EXPLANATIONS = {
    EMPTY: (
        "The empty circuit reaches the target: it is at or above the loss of the model with every node ablated, "
        "so no node is needed (or the task loss does not depend on the masks)."
    ),
    WHOLE_MODEL: "Every node is needed to reach the target: the circuit is the whole model.",
    NOT_REACHED: (
        "The target was not reached, even with every node active after mask training: the page shows those nodes."
    ),
}


def explanation(kind: str | None) -> str | None:
    """A sentence for a page about a degenerate circuit; None for an ordinary one."""
    return EXPLANATIONS.get(kind or CIRCUIT)


def described(reached_target: bool, kind: str | None) -> str:
    """Whether the target was reached ("yes", "no"), with the kind when it is degenerate (for tables)."""
    text = "yes" if reached_target else "no"
    return f"{text} ({kind})" if kind in (EMPTY, WHOLE_MODEL) else text
