"""Calibrating a cascade: per-tier thresholds that reach a target accuracy at the lowest cost.

Given every tier's answer on a labelled validation set, the thresholds are chosen greedily
from the cheapest tier up: each tier gets the lowest threshold (so it answers as much as it
can) that keeps the whole cascade at or above the target accuracy, with every later tier
still escalating to the last. Where no threshold reaches the target (the later tiers are no
better), the tier gets the threshold with the highest accuracy, the lowest among equals:
an unreachable target must not send everything to a tier that is worse. The result reports
the accuracy reached and the expected share of items each tier answers.

Items may carry weights: calibrating from live audits, an audited item stands for the
1/audit-share items like it that were not audited (`weights`). `wilson` gives the 95 %
interval of a measured share, and `baseline` what a calibrated cascade should look like in
production (per tier: the share it answers, its agreement with the last tier, its mean
confidence), which `analysis.monitoring` compares live decisions with.
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


def wilson(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a share measured as successes / n."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def simulate(
    answers: Sequence[Sequence[Label]],
    truth: Sequence[str],
    thresholds: Sequence[float],
    weights: Sequence[float] | None = None,
) -> tuple[float, tuple[float, ...]]:
    """Accuracy and per-tier shares of a cascade with `thresholds` on recorded answers."""
    correct = 0.0
    counts = [0.0] * len(answers)
    said = cascade_answers(answers, thresholds)
    for i, (answered, expected) in enumerate(zip(said, truth, strict=True)):
        if answered is not None:
            weight = 1.0 if weights is None else weights[i]
            counts[answered[0]] += weight
            correct += weight * (answered[1].label == expected)
    n = (len(truth) if weights is None else sum(weights)) or 1
    return correct / n, tuple(c / n for c in counts)


def cascade_answers(
    answers: Sequence[Sequence[Label]], thresholds: Sequence[float]
) -> list[tuple[int, Label] | None]:
    """Per item, the tier of a cascade with `thresholds` that answers it and its answer, on
    recorded answers (one list per tier); None where no tier labels it."""
    last = len(answers) - 1
    out: list[tuple[int, Label] | None] = []
    for i in range(len(answers[0]) if answers else 0):
        found = None
        for tier, threshold in enumerate(thresholds):
            said = answers[tier][i]
            if said.label is not None and (tier == last or said.confidence >= threshold):
                found = (tier, said)
                break
        out.append(found)
    return out


@dataclass(frozen=True, slots=True)
class TierBaseline:
    share: float
    """Share of all items the tier answers."""
    agreement: float | None
    """Share of its answers the last tier agrees with (None: it answered nothing)."""
    answered: int
    """How many items it answered (weighted)."""
    mean_confidence: float | None
    """Mean confidence of its answers on the items that reach it (abstentions count 0)."""


def baseline(
    answers: Sequence[Sequence[Label]],
    thresholds: Sequence[float],
    weights: Sequence[float] | None = None,
) -> list[TierBaseline]:
    """What each tier should look like in production with `thresholds`, from answers of
    every tier on the same items (agreement is with the last tier's answer)."""
    last = len(answers) - 1
    n = len(answers[0]) if answers else 0
    answered = [0.0] * len(answers)
    agreed = [0.0] * len(answers)
    reached = [0.0] * len(answers)
    confidence = [0.0] * len(answers)
    for i in range(n):
        weight = 1.0 if weights is None else weights[i]
        for tier, threshold in enumerate(thresholds):
            said = answers[tier][i]
            reached[tier] += weight
            confidence[tier] += weight * (said.confidence if said.label is not None else 0.0)
            if said.label is not None and (tier == last or said.confidence >= threshold):
                answered[tier] += weight
                agreed[tier] += weight * (said.label == answers[last][i].label)
                break
    total = reached[0] if reached else 0.0
    return [
        TierBaseline(
            share=answered[t] / (total or 1.0),
            agreement=agreed[t] / answered[t] if answered[t] else None,
            answered=round(answered[t]),
            mean_confidence=confidence[t] / reached[t] if reached[t] else None,
        )
        for t in range(len(answers))
    ]


def calibrate(
    answers: Sequence[Sequence[Label]],
    truth: Sequence[str],
    target_accuracy: float,
    current: Sequence[float] | None = None,
    weights: Sequence[float] | None = None,
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
            accuracy = simulate(answers, truth, trial, weights)[0]
            if accuracy >= target_accuracy:
                best = (accuracy, candidate)
                break
            if best is None or accuracy > best[0]:
                best = (accuracy, candidate)
        thresholds[tier] = best[1] if best else NEVER
    accuracy, shares = simulate(answers, truth, thresholds, weights)
    return Calibration(thresholds=tuple(thresholds), accuracy=accuracy, shares=shares)


def calibrate_agreement(
    answers: Sequence[Sequence[Label]],
    truth: Sequence[str],
    targets: Sequence[float | None],
    weights: Sequence[float] | None = None,
    current: Sequence[float] | None = None,
) -> Calibration:
    """Thresholds that keep each cheap tier's answers as right as `targets` says (per tier:
    the share of its answers that match `truth`, e.g. the agreement with the last tier that
    calibration measured), from the cheapest tier up: the lowest threshold whose answers, on
    the items that reach the tier, meet its target. A tier that cannot meet it answers
    nothing; a tier without a target (None) keeps its `current` threshold."""
    last = len(answers) - 1
    n = len(truth)
    w = [1.0] * n if weights is None else list(weights)
    thresholds = [NEVER] * last + [0.0]
    reaching = list(range(n))
    for tier in range(last):
        target = targets[tier]
        if target is None:
            thresholds[tier] = current[tier] if current is not None else NEVER
        else:
            said = [(answers[tier][i], i) for i in reaching if answers[tier][i].label is not None]
            said.sort(key=lambda pair: -pair[0].confidence)  # most confident first
            right = total = 0.0
            chosen = NEVER
            for k, (label, i) in enumerate(said):  # the lowest threshold still right enough
                right += w[i] * (label.label == truth[i])
                total += w[i]
                tied = k + 1 < len(said) and said[k + 1][0].confidence == label.confidence
                if not tied and right / total >= target:
                    chosen = label.confidence
            thresholds[tier] = chosen
        reaching = [
            i
            for i in reaching
            if answers[tier][i].label is None or answers[tier][i].confidence < thresholds[tier]
        ]
    accuracy, shares = simulate(answers, truth, thresholds, weights)
    return Calibration(thresholds=tuple(thresholds), accuracy=accuracy, shares=shares)
