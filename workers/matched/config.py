"""The matched_dense stage's settings."""

from __future__ import annotations

from pydantic import Field

from ..stage import StrictModel

SPARSE_INPUT = "sparse"  # a matched_dense cell's input: the sparse model; the dense cells are "dense", "dense/<v>"


class MatchedConfig(StrictModel):
    enabled: bool = Field(
        True, description="Pair each sparse model with the dense checkpoint nearest its pretraining val loss."
    )
    tolerance: float = Field(
        0.05,
        ge=0,
        description="Largest pretraining val-loss gap (nats) at which a dense checkpoint counts as matched; the "
        "report calls a wider pair unmatched and never makes it the headline.",
    )
