"""The report stage's settings: the margins and factor of the verdict's checks (`verdict.py`)."""

from __future__ import annotations

from pydantic import Field

from ..stage import StrictModel


class ReportConfig(StrictModel):
    enabled: bool = True
    exceed_margin: float = Field(
        0.1,
        ge=0,
        description=(
            "within_model: a circuit whose test loss is under its full model's by more than this many nats "
            "'exceeds its model' (the ablation, not the model, computes it) and is not trusted."
        ),
    )
    necessary_margin: float = Field(
        0.3,
        ge=0,
        description=(
            "necessary: ablating the circuit (the inverse, the rest of the model kept) must raise the test loss "
            "over the full model's by at least this many nats (paper Fig. 32)."
        ),
    )
    stable_factor: float = Field(
        2.0,
        ge=1,
        description=(
            "stable: across mask seeds, the largest node and edge counts are at most this factor times the smallest."
        ),
    )

    def verdict_settings(self) -> dict[str, float]:
        """The values the verdict reads: the report cell's params (so changing one re-keys the report)."""
        return self.model_dump(mode="json", exclude={"enabled"})
