"""The two arms of every champion/challenger comparison: registry aliases, server slots, A/B arms."""

from __future__ import annotations

from enum import StrEnum


class Variant(StrEnum):
    """A model's role. The values are the MLflow alias names and the labels in metrics and logs."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"
