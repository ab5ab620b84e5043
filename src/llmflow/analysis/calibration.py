"""Calibrating a cascade: per-tier thresholds that reach a target accuracy at the lowest cost.

Given every tier's answer on a labelled validation set, the thresholds are chosen greedily
from the cheapest tier up: each tier gets the lowest threshold (so it answers as much as it
can) that keeps the whole cascade at or above the target accuracy, with every later tier
still escalating to the last. Where no threshold reaches the target (the later tiers are no
better), the tier gets the threshold with the highest accuracy, the lowest among equals:
an unreachable target must not send everything to a tier that is worse. The result reports
the accuracy reached and the expected share of items each tier answers.
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
    answers: Sequence[Sequence[Label]],
    truth: Sequence[str],
    target_accuracy: float,
    current: Sequence[float] | None = None,
) -> Calibration:
    """Thresholds for tiers answering `answers` (one list per tier, aligned with `truth`).

    A tier that answered none of the items (rules that matched nothing) keeps its `current`
    threshold: there is no evidence to change it."""
    if not answers or any(len(a) != len(truth) for a in answers):
        raise ValueError("every tier needs one answer per validation item")
    thresholds = [NEVER] * (len(answers) - 1) + [0.0]
    for tier in range(len(answers) - 1):
        candidates = sorted({a.confidence for a in answers[tier] if a.label is not None})
        if not candidates and current is not None:
            thresholds[tier] = current[tier]
            continue
        best: tuple[float, float] | None = None  # (accuracy, threshold)
        for candidate in [*candidates, NEVER]:  # lowest first: answer as much as allowed
            trial = [*thresholds[:tier], candidate, *thresholds[tier + 1 :]]
            accuracy = simulate(answers, truth, trial)[0]
            if accuracy >= target_accuracy:
                best = (accuracy, candidate)
                break
            if best is None or accuracy > best[0]:
                best = (accuracy, candidate)
        thresholds[tier] = best[1] if best else NEVER
    accuracy, shares = simulate(answers, truth, thresholds)
    return Calibration(thresholds=tuple(thresholds), accuracy=accuracy, shares=shares)
