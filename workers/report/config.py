"""The report stage's settings."""

from __future__ import annotations

from ..stage import StrictModel


class ReportConfig(StrictModel):
    enabled: bool = True
