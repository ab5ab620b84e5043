"""Watching a cascade in production: live decisions against what calibration measured.

Every decision a cascade makes in a recorded run is in the run store (`Store.cascade_decisions`):
the tier that answered, what every tier tried said, and, for the share `audit` of cheap
answers, the last tier's label too. From them, per tier:

- the share of items it answers, against the share calibration expected;
- its mean confidence on the items that reach it (an abstention counts 0), against calibration's;
- the audited agreement: of its audited answers, how many the last tier agrees with (with a
  95 % Wilson interval), against the agreement calibration measured.

Drift is flagged when the audited agreement's interval lies wholly below the calibrated level,
or the share or the mean confidence moved beyond a tolerance (the share's interval wholly
outside expected ± tolerance). `audit_answers` turns the same records into calibration data
for `calibrate --from-audits`: escalated items carry every tier's answer, audited ones stand
for the 1/audit-share answered items like them (a weight), people's corrections win.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
class LiveReport:
    step: str
    items: int
    tiers: list[TierLive]
    days: list[Day]
    baseline: bool
    """Whether a calibrated baseline was there to compare with."""

    @property
    def drifted(self) -> bool:
        return any(t.drift for t in self.tiers)


def _attempts(row: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(row["attempts"] or "[]")
    return found


def live(
    rows: Sequence[Any],
    tiers: Sequence[str],
    step: str,
    expected: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    share_tolerance: float = 0.05,
    confidence_tolerance: float = 0.05,
    min_items: int = 100,
    min_audits: int = 10,
) -> LiveReport:
    """Per-tier live figures of cascade decisions `rows` (oldest first), compared with
    `expected` (per tier: share, agreement, mean_confidence, as `calibration.baseline`)."""
    n = len(rows)
    reached = dict.fromkeys(tiers, 0)
    answered = dict.fromkeys(tiers, 0)
    confidence = dict.fromkeys(tiers, 0.0)
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
    report = []
    for tier in tiers:
        figures = TierLive(
            tier=tier,
            reached=reached[tier],
            answered=answered[tier],
            share=answered[tier] / max(1, n),
            share_interval=wilson(answered[tier], n),
            mean_confidence=confidence[tier] / reached[tier] if reached[tier] else None,
            audited=audited[tier],
            agreed=agreed[tier],
            agreement_interval=wilson(agreed[tier], audited[tier]),
        )
        if expected and tier in expected:
            base = expected[tier]
            figures.expected_share = base.get("share")
            figures.expected_confidence = base.get("mean_confidence")
            figures.expected_agreement = base.get("agreement")
            figures.drift = _drift(
                figures, tier == tiers[-1], n, share_tolerance, confidence_tolerance,
                min_items, min_audits,
            )  # fmt: skip
        report.append(figures)
    ordered = sorted(days.values(), key=lambda d: d.day)
    return LiveReport(step=step, items=n, tiers=report, days=ordered, baseline=bool(expected))


def _drift(
    t: TierLive,
    last: bool,
    n: int,
    share_tolerance: float,
    confidence_tolerance: float,
    min_items: int,
    min_audits: int,
) -> list[str]:
    why = []
    expected = t.expected_agreement
    if not last and expected is not None and t.audited >= min_audits:
        low, high = t.agreement_interval
        if high < expected:
            why.append(
                f"audited agreement {t.agreed}/{t.audited} = {t.agreed / t.audited:.1%} "
                f"(95 % {low:.1%}–{high:.1%}) below the calibrated {expected:.1%}"
            )
    if t.expected_share is not None and n >= min_items:
        low, high = t.share_interval
        if low > t.expected_share + share_tolerance or high < t.expected_share - share_tolerance:
            why.append(
                f"answers {t.share:.1%} of items (95 % {low:.1%}–{high:.1%}), calibrated "
                f"{t.expected_share:.1%} ± {share_tolerance:.0%}"
            )
    if (
        not last
        and t.expected_confidence is not None
        and t.mean_confidence is not None
        and t.reached >= min_items
        and abs(t.mean_confidence - t.expected_confidence) > confidence_tolerance
    ):
        why.append(
            f"mean confidence {t.mean_confidence:.3f}, calibrated {t.expected_confidence:.3f} "
            f"± {confidence_tolerance:.2f}"
        )
    return why


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
        elif row["audit_label"] is not None and audit > 0:
            weight = 1.0 / audit
            judged = row["audit_label"]
            said[-1] = Label(label=judged, confidence=1.0)
            used += 1
        else:
            continue
        for i, label in enumerate(said):
            answers[i].append(label or Label(label=None, confidence=0.0))
        truth.append(row["correction"] or judged)
        weights.append(weight)
    return answers, truth, weights, used
