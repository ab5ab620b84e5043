"""Watching a cascade in production: live decisions against what calibration measured.

Every decision a cascade makes in a recorded run is in the run store (`Store.cascade_decisions`):
the tier that answered, what every tier tried said, and, for the share `audit` of cheap
answers, the last tier's label too. From them, per tier:

- the share of items it answers, against the share calibration expected;
- its mean confidence on the items that reach it (an abstention counts 0), against calibration's;
- the audited agreement: of its audited answers, how many the last tier agrees with (with a
  Wilson interval), against the agreement calibration measured.

Drift is flagged when a figure moved beyond its tolerance: its interval (a Wilson interval for
a share or the agreement, a normal one for the mean confidence) lies wholly outside expected ±
tolerance, so that a small sample's noise is not taken for drift. The intervals are at
`level`, 99 % unless told: a monitor checks again and again, on overlapping windows, and at
95 % calm traffic would be flagged every few dozen checks by chance alone.

The calibrated share and mean confidence come from calibration's answers, and an ml tier
trained on the calibration rows was calibrated on its out-of-fold copies, each trained on
fewer rows than the deployed tier: the deployed tier is more confident and answers more, so
its live share and confidence differ from the calibrated ones without any drift. Hence
`reference`: decisions from a period the cascade is trusted on (the first few hundred after
the version went live, as production monitors do). With it, each tier's share and mean
confidence, and the share of each label the cascade gives, are compared with the reference's
(the interval of the difference wholly beyond ± tolerance; for labels, Bonferroni over the
labels with `min_label_items` or more between the two). The agreement stays compared with the
calibrated level: it needs the last tier's labels, which a reference window has few of.

`audit_answers` turns the same records into calibration data
for `calibrate --from-audits`: escalated items carry every tier's answer, audited ones stand
for the 1/audit-share answered items like them (a weight), people's corrections win.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from ..steps.label import Label
from .calibration import wilson


@dataclass
class TierLive:
    tier: str
    reached: int
    """Items that reached the tier."""
    answered: int
    share: float
    """Share of all items the tier answered."""
    share_interval: tuple[float, float]
    mean_confidence: float | None
    audited: int
    agreed: int
    agreement_interval: tuple[float, float]
    expected_share: float | None = None
    expected_confidence: float | None = None
    expected_agreement: float | None = None
    confidence_sd: float | None = None
    """Standard deviation of the confidences the mean is taken over."""
    reference_items: int = 0
    """Items of the reference window the expected share and confidence come from (0: they
    are calibration's)."""
    expected_confidence_sd: float | None = None
    expected_reached: int = 0
    drift: list[str] = field(default_factory=list)
    """Why this tier drifted (empty: it did not)."""

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.audited if self.audited else None


@dataclass
class Day:
    day: str
    items: int
    shares: dict[str, float]
    audited: int
    agreed: int


@dataclass
class LabelLive:
    label: str
    count: int
    share: float
    """Share of the items the cascade gave this label (whichever tier answered)."""
    reference_count: int
    reference_share: float
    difference_interval: tuple[float, float]
    """Interval of share − reference share (Newcombe's, Bonferroni-corrected)."""


@dataclass(frozen=True)
class DriftRules:
    """How `live` tells drift from noise: tolerances, the intervals' level, the least data."""

    share_tolerance: float = 0.05
    confidence_tolerance: float = 0.05
    agreement_tolerance: float = 0.05
    """The calibrated agreement is measured on out-of-fold copies of an ml tier, with its own
    noise: the live one may sit this far below it before it counts."""
    label_tolerance: float = 0.02
    level: float = 0.99
    min_items: int = 100
    min_audits: int = 10
    min_label_items: int = 5

    @property
    def z(self) -> float:
        return _z(1 - self.level)


@dataclass
class LiveReport:
    step: str
    items: int
    tiers: list[TierLive]
    days: list[Day]
    baseline: bool
    """Whether a calibrated baseline (or a reference window) was there to compare with."""
    labels: list[LabelLive] = field(default_factory=list)
    """With a reference window: the labels tested (enough items between the two)."""
    label_drift: list[str] = field(default_factory=list)
    """Labels whose share moved beyond the tolerance (empty: none did)."""
    reference_items: int = 0
    level: float = 0.99
    """The level of the intervals."""

    @property
    def drifted(self) -> bool:
        return bool(self.label_drift) or any(t.drift for t in self.tiers)


def _z(alpha: float) -> float:
    """The two-sided normal quantile for `alpha`."""
    return NormalDist().inv_cdf(1 - alpha / 2)


def difference_interval(
    x1: float, n1: float, x2: float, n2: float, z: float = 1.96
) -> tuple[float, float]:
    """Newcombe's hybrid score interval (from two Wilson intervals) of x1/n1 − x2/n2."""
    p1, p2 = x1 / n1, x2 / n2
    low1, high1 = wilson(x1, n1, z)
    low2, high2 = wilson(x2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2),
        d + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2),
    )


def _outside(interval: tuple[float, float], centre: float, tolerance: float) -> bool:
    low, high = interval
    return low > centre + tolerance or high < centre - tolerance


def _attempts(row: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(row["attempts"] or "[]")
    return found


def live(
    rows: Sequence[Any],
    tiers: Sequence[str],
    step: str,
    expected: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    reference: Sequence[Any] | None = None,
    share_tolerance: float = 0.05,
    confidence_tolerance: float = 0.05,
    agreement_tolerance: float = 0.05,
    label_tolerance: float = 0.02,
    level: float = 0.99,
    min_items: int = 100,
    min_audits: int = 10,
    min_label_items: int = 5,
) -> LiveReport:
    """Per-tier live figures of cascade decisions `rows` (oldest first), compared with
    `expected` (per tier: share, agreement, mean_confidence, as `calibration.baseline`) and,
    when given, with the decisions `reference` (a trusted period, e.g. the first N after the
    version went live; not overlapping `rows`): the share and mean confidence of each tier
    and the share of each label are then compared with the reference's, not calibration's."""
    tests = DriftRules(share_tolerance, confidence_tolerance, agreement_tolerance, label_tolerance,
                  level, min_items, min_audits, min_label_items)  # fmt: skip
    n = len(rows)
    reached = dict.fromkeys(tiers, 0)
    answered = dict.fromkeys(tiers, 0)
    confidence = dict.fromkeys(tiers, 0.0)
    squares = dict.fromkeys(tiers, 0.0)
    audited = dict.fromkeys(tiers, 0)
    agreed = dict.fromkeys(tiers, 0)
    days: dict[str, Day] = {}
    for row in rows:
        day_name = datetime.datetime.fromtimestamp(row["created_at"], datetime.UTC).strftime(
            "%Y-%m-%d"
        )
        day = days.setdefault(day_name, Day(day_name, 0, dict.fromkeys(tiers, 0.0), 0, 0))
        day.items += 1
        for attempt in _attempts(row):
            if attempt["tier"] in reached:
                reached[attempt["tier"]] += 1
                if attempt["label"] is not None:
                    confidence[attempt["tier"]] += attempt["confidence"] or 0.0
                    squares[attempt["tier"]] += (attempt["confidence"] or 0.0) ** 2
        tier = row["tier"]
        if tier in answered:
            answered[tier] += 1
            day.shares[tier] += 1
        if row["audit_label"] is not None and tier in audited:
            truth = row["correction"] or row["audit_label"]
            audited[tier] += 1
            agreed[tier] += row["label"] == truth
            day.audited += 1
            day.agreed += row["label"] == truth
    for day in days.values():
        day.shares = {t: c / day.items for t, c in day.shares.items()}
    ref = None if reference is None else live(reference, tiers, step, level=level)
    report = []
    for tier in tiers:
        mean = confidence[tier] / reached[tier] if reached[tier] else None
        figures = TierLive(
            tier=tier,
            reached=reached[tier],
            answered=answered[tier],
            share=answered[tier] / max(1, n),
            share_interval=wilson(answered[tier], n, tests.z),
            mean_confidence=mean,
            audited=audited[tier],
            agreed=agreed[tier],
            agreement_interval=wilson(agreed[tier], audited[tier], tests.z),
            confidence_sd=None if mean is None
            else math.sqrt(max(0.0, squares[tier] / reached[tier] - mean * mean)),
        )  # fmt: skip
        if expected and tier in expected:
            base = expected[tier]
            figures.expected_share = base.get("share")
            figures.expected_confidence = base.get("mean_confidence")
            figures.expected_agreement = base.get("agreement")
        if ref is not None and ref.items:
            mine = next(t for t in ref.tiers if t.tier == tier)
            figures.reference_items = ref.items
            figures.expected_share = mine.share
            figures.expected_confidence = mine.mean_confidence
            figures.expected_confidence_sd = mine.confidence_sd
            figures.expected_reached = mine.reached
        if (expected and tier in expected) or figures.reference_items:
            figures.drift = _drift(figures, tier == tiers[-1], n, tests)
        report.append(figures)
    ordered = sorted(days.values(), key=lambda d: d.day)
    result = LiveReport(step=step, items=n, tiers=report, days=ordered,
                        baseline=bool(expected) or bool(ref and ref.items),
                        level=level)  # fmt: skip
    if reference is not None and reference:
        result.reference_items = len(reference)
        result.labels, result.label_drift = _label_drift(rows, reference, tests)
    return result


def _labels(rows: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        label = row["label"]
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    return counts


def _label_drift(
    rows: Sequence[Any], reference: Sequence[Any], tests: DriftRules
) -> tuple[list[LabelLive], list[str]]:
    """Labels given `min_label_items` times or more between `rows` and `reference` (screened
    on the total alone, which says nothing about the direction), each share compared with
    the reference's: drift when the difference's interval, Bonferroni-corrected over the
    labels tested (at `level` for them all), lies wholly beyond ± the label tolerance."""
    n, m = len(rows), len(reference)
    tolerance, min_label_items = tests.label_tolerance, tests.min_label_items
    if n < tests.min_items or not m:
        return [], []
    live_counts, ref_counts = _labels(rows), _labels(reference)
    tested = sorted(
        label
        for label in set(live_counts) | set(ref_counts)
        if live_counts.get(label, 0) + ref_counts.get(label, 0) >= min_label_items
    )
    if not tested:
        return [], []
    z = _z((1 - tests.level) / len(tested))
    labels, why = [], []
    for label in tested:
        x, y = live_counts.get(label, 0), ref_counts.get(label, 0)
        interval = difference_interval(x, n, y, m, z)
        labels.append(LabelLive(label, x, x / n, y, y / m, interval))
        if _outside(interval, 0.0, tolerance):
            why.append(
                f"label {label!r}: {x / n:.1%} of the answers, {y / m:.1%} in the reference "
                f"window (difference {interval[0]:+.1%} to {interval[1]:+.1%}, beyond "
                f"± {tolerance:.0%})"
            )
    return labels, why


def _drift(t: TierLive, last: bool, n: int, tests: DriftRules) -> list[str]:
    why = []
    expected = t.expected_agreement
    level = f"{tests.level:.0%}"
    if not last and expected is not None and t.audited >= tests.min_audits:
        low, high = t.agreement_interval
        if high < expected - tests.agreement_tolerance:
            why.append(
                f"audited agreement {t.agreed}/{t.audited} = {t.agreed / t.audited:.1%} "
                f"({level} {low:.1%}–{high:.1%}) below the calibrated {expected:.1%} − "
                f"{tests.agreement_tolerance:.0%}"
            )
    if t.reference_items:
        return why + _drift_from_reference(t, last, n, tests)
    share_tolerance, confidence_tolerance = tests.share_tolerance, tests.confidence_tolerance
    if t.expected_share is not None and n >= tests.min_items:
        low, high = t.share_interval
        if _outside(t.share_interval, t.expected_share, share_tolerance):
            why.append(
                f"answers {t.share:.1%} of items ({level} {low:.1%}–{high:.1%}), calibrated "
                f"{t.expected_share:.1%} ± {share_tolerance:.0%}"
            )
    if (
        not last
        and t.expected_confidence is not None
        and t.mean_confidence is not None
        and t.confidence_sd is not None
        and t.reached >= tests.min_items
    ):
        half = tests.z * t.confidence_sd / math.sqrt(t.reached)
        low, high = t.mean_confidence - half, t.mean_confidence + half
        if _outside((low, high), t.expected_confidence, confidence_tolerance):
            why.append(
                f"mean confidence {t.mean_confidence:.3f} ({level} {low:.3f}–{high:.3f}), "
                f"calibrated {t.expected_confidence:.3f} ± {confidence_tolerance:.2f}"
            )
    return why


def _drift_from_reference(t: TierLive, last: bool, n: int, tests: DriftRules) -> list[str]:
    """Share and mean confidence against the reference window's: the interval of the
    difference (Newcombe's for the share, normal for the mean) wholly beyond ± tolerance."""
    why = []
    m = t.reference_items
    share_tolerance, confidence_tolerance = tests.share_tolerance, tests.confidence_tolerance
    if t.expected_share is not None and n >= tests.min_items:
        low, high = difference_interval(t.answered, n, t.expected_share * m, m, tests.z)
        if _outside((low, high), 0.0, share_tolerance):
            why.append(
                f"answers {t.share:.1%} of items, {t.expected_share:.1%} in the reference "
                f"window (difference {low:+.1%} to {high:+.1%}, beyond ± {share_tolerance:.0%})"
            )
    if (
        not last
        and t.mean_confidence is not None
        and t.expected_confidence is not None
        and t.confidence_sd is not None
        and t.expected_confidence_sd is not None
        and t.reached >= tests.min_items
        and t.expected_reached
    ):
        d = t.mean_confidence - t.expected_confidence
        half = tests.z * math.sqrt(
            t.confidence_sd**2 / t.reached + t.expected_confidence_sd**2 / t.expected_reached
        )
        if _outside((d - half, d + half), 0.0, confidence_tolerance):
            why.append(
                f"mean confidence {t.mean_confidence:.3f}, {t.expected_confidence:.3f} in the "
                f"reference window (difference {d - half:+.3f} to {d + half:+.3f}, beyond "
                f"± {confidence_tolerance:.2f})"
            )
    return why


def in_audit_answers(row: Any, last: str, audit: float) -> bool:
    """Whether `audit_answers` uses the recorded decision `row`: the last tier (named `last`)
    answered it, or it audited a cheap tier's answer."""
    return bool(row["tier"] == last or (row["audit_label"] is not None and audit > 0))


def audit_answers(
    rows: Sequence[Any], tiers: Sequence[str], audit: float
) -> tuple[list[list[Label]], list[str], list[float], int]:
    """Calibration data from recorded decisions: every tier's answer (one list per tier), the
    truth (a person's correction, else the last tier's label), and a weight per item.

    An item the last tier answered has every tier's answer, weight 1. An audited item answered
    by a cheap tier has the answers up to that tier and the last tier's audit (tiers between
    them count as abstaining), weight 1 / `audit`: it stands for the unaudited answers like it.
    Other answered items are left out. Returns the answers, truth, weights and the number of
    audited items used."""
    last = tiers[-1]
    index = {t: i for i, t in enumerate(tiers)}
    answers: list[list[Label]] = [[] for _ in tiers]
    truth: list[str] = []
    weights: list[float] = []
    used = 0
    for row in rows:
        if not in_audit_answers(row, last, audit):
            continue
        said: list[Label | None] = [None] * len(tiers)
        for attempt in _attempts(row):
            if attempt["tier"] in index:
                said[index[attempt["tier"]]] = Label(
                    label=attempt["label"],
                    confidence=1.0 if attempt["confidence"] is None else attempt["confidence"],
                )
        if row["tier"] == last:
            weight = 1.0
            judged = row["label"]
        else:
            weight = 1.0 / audit
            judged = row["audit_label"]
            said[-1] = Label(label=judged, confidence=1.0)
            used += 1
        for i, label in enumerate(said):
            answers[i].append(label or Label(label=None, confidence=0.0))
        truth.append(row["correction"] or judged)
        weights.append(weight)
    return answers, truth, weights, used
