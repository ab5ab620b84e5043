"""What classifiers answer: a label and a confidence, read from any classifier's output."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Label(BaseModel):
    """A classifier's answer."""

    label: str | None
    """The label; None when the classifier abstains (rules that matched nothing)."""
    confidence: float = Field(ge=0, le=1)
    """How sure: a calibrated probability, 1 for a matched rule, 0 for an abstention."""


def read_label(output: Any) -> tuple[str | None, float | None]:
    """The label and confidence of a classifier's output: a `Label` (or any object with
    `label` and `confidence`), an enum, or a plain value (confidence unknown)."""
    label = getattr(output, "label", output)
    label = getattr(label, "value", label)  # an Enum's value
    return (None if label is None else str(label)), getattr(output, "confidence", None)
