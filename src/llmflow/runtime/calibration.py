"""Calibrating a cascade: per-tier thresholds that reach a target accuracy at the lowest cost.

Given every tier's answer on a labelled validation set, the thresholds are chosen greedily
from the cheapest tier up: each tier gets the lowest threshold (so it answers as much as it
can) that keeps the whole cascade at or above the target accuracy, with every later tier
still escalating to the last. The result reports the accuracy reached and the expected share
of items each tier answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..steps.label import Label

NEVER = math.inf
"""A threshold no confidence reaches: the tier always escalates."""


@dataclass(frozen=True, slots=True)
class Calibration:
    thresholds: tuple[float, ...]
    """One per tier; the last tier always answers (its threshold is 0)."""
    accuracy: float
    """Validation accuracy of the cascade with these thresholds."""
    shares: tuple[float, ...]
    """Share of the validation items each tier answers."""


def simulate(
    answers: Sequence[Sequence[Label]], truth: Sequence[str], thresholds: Sequence[float]
) -> tuple[float, tuple[float, ...]]:
    """Accuracy and per-tier shares of a cascade with `thresholds` on recorded answers."""
    last = len(answers) - 1
    correct = 0
    counts = [0] * len(answers)
    for i, expected in enumerate(truth):
        for tier, threshold in enumerate(thresholds):
            said = answers[tier][i]
            if said.label is not None and (tier == last or said.confidence >= threshold):
                counts[tier] += 1
                correct += said.label == expected
                break
    n = len(truth) or 1
    return correct / n, tuple(c / n for c in counts)


def calibrate(
    answers: Sequence[Sequence[Label]], truth: Sequence[str], target_accuracy: float
) -> Calibration:
    """Thresholds for tiers answering `answers` (one list per tier, aligned with `truth`)."""
    if not answers or any(len(a) != len(truth) for a in answers):
        raise ValueError("every tier needs one answer per validation item")
    thresholds = [NEVER] * (len(answers) - 1) + [0.0]
    for tier in range(len(answers) - 1):
        candidates = sorted({a.confidence for a in answers[tier] if a.label is not None})
        for candidate in candidates:  # lowest first: answer as much as the target allows
            trial = [*thresholds[:tier], candidate, *thresholds[tier + 1 :]]
            if simulate(answers, truth, trial)[0] >= target_accuracy:
                thresholds[tier] = candidate
                break
    accuracy, shares = simulate(answers, truth, thresholds)
    return Calibration(thresholds=tuple(thresholds), accuracy=accuracy, shares=shares)
