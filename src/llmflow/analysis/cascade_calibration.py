"""Calibrating a workflow's cascade: per-tier thresholds picked on a validation split and
checked on the held-out rest (`calibrate_on`), or from live audits of recorded decisions
(`calibrate_from_audits`, which can first retrain the ml tier on the labels the last tier
gave: `retrain`), and the per-tier baselines stored beside them. The threshold math is in
`calibration.py`."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..patterns.cascade import Cascade
from ..steps.ml import MLStep
from ..store.classifiers import ClassifierVersions
from .calibration import (
    Calibration,
    TierBaseline,
    baseline,
    calibrate,
    calibrate_agreement,
    simulate,
    wilson,
)
from .monitoring import audit_answers, in_audit_answers
from .tier_answers import TierAnswers, out_of_fold, overlap


@dataclass
class CalibrationReport:
    calibration: Calibration
    """Thresholds and shares on the validation split."""
    test_accuracy: float
    test_shares: tuple[float, ...]
    """Accuracy and per-tier shares of the held-out split with those thresholds."""
    tier_accuracy: list[float]
    """Each tier's accuracy alone, on all rows."""
    cost_per_item: list[Decimal]
    """Dollars one item costs at each tier."""
    validation: int
    test: int
    target: float = 0.0
    """The accuracy aimed at (absolute, or the last tier's validation accuracy − max_drop)."""
    validation_interval: tuple[float, float] = (0.0, 1.0)
    test_interval: tuple[float, float] = (0.0, 1.0)
    tier_intervals: list[tuple[float, float]] = field(default_factory=list)
    """95 % Wilson intervals of the accuracies above."""
    baseline: list[TierBaseline] = field(default_factory=list)
    """Per tier, on all rows with the chosen thresholds: share, agreement with the last tier,
    mean confidence (what live monitoring compares with)."""
    version: Path | None = None


def split(n: int, share: float, seed: int = 7) -> tuple[list[int], list[int]]:
    """Shuffled indices of two parts: the first `share` of `n`, and the rest."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    cut = max(1, min(n - 1, round(n * share)))
    return order[:cut], order[cut:]


def pick(values: Sequence[Any], indices: Sequence[int]) -> list[Any]:
    return [values[i] for i in indices]


def calibrate_on(
    tier_answers: TierAnswers,
    truth: Sequence[str],
    target: float | None = None,
    validation_share: float = 0.5,
    current: Sequence[float] | None = None,
    *,
    max_drop: float | None = None,
) -> CalibrationReport:
    """Thresholds chosen on a validation split of the rows, checked on the rest. The target
    is an accuracy, or (`max_drop`) at most that far below the last tier's accuracy on the
    validation rows."""
    if len(truth) < 4:
        raise ConfigError("calibration needs at least 4 labelled rows (better: 100 or more)")
    if (target is None) == (max_drop is None):
        raise ConfigError("give a target accuracy or a max drop below the last tier, not both")
    val, test = split(len(truth), validation_share)
    validation = [pick(a, val) for a in tier_answers.answers]
    if max_drop is not None:
        last = validation[-1]
        target = (
            sum(a.label == t for a, t in zip(last, pick(truth, val), strict=True)) / len(val)
            - max_drop
        )
    assert target is not None
    calibration = calibrate(validation, pick(truth, val), target, current)
    accuracy, shares = simulate(
        [pick(a, test) for a in tier_answers.answers], pick(truth, test), calibration.thresholds
    )
    n = len(truth)
    right = [
        sum(a.label == t for a, t in zip(tier, truth, strict=True)) for tier in tier_answers.answers
    ]
    return CalibrationReport(
        calibration=calibration,
        test_accuracy=accuracy,
        test_shares=shares,
        tier_accuracy=[r / n for r in right],
        cost_per_item=[c / n for c in tier_answers.cost],
        validation=len(val),
        test=len(test),
        target=target,
        validation_interval=wilson(calibration.accuracy * len(val), len(val)),
        test_interval=wilson(accuracy * len(test), len(test)),
        tier_intervals=[wilson(r, n) for r in right],
        baseline=baseline(tier_answers.answers, calibration.thresholds),
    )


def honest(cascade: Cascade, texts: Sequence[str], tier_answers: TierAnswers) -> list[str]:
    """Replace the answers of ml tiers trained on some of `texts` by out-of-fold answers
    (`out_of_fold`), so that calibration does not see a tier answering rows it learned.
    Returns what was done, one line per ml tier; an ml tier whose training rows are unknown
    is said to be so (its answers may be too good)."""
    notes = []
    for tier, (step, _) in enumerate(cascade.tiers):
        if not isinstance(step, MLStep):
            continue
        seen = overlap(step, texts)
        if seen is None:
            notes.append(
                f"WARNING: the training rows of ml tier {step.name!r} are unknown (a model "
                "file from elsewhere): if it was trained on these rows, the thresholds below "
                "trust it too much"
            )
        elif seen:
            said = out_of_fold(step, texts)
            assert said is not None
            tier_answers.answers[tier] = said
            notes.append(
                f"ml tier {step.name!r} was trained on {seen} of these {len(texts)} rows: "
                "calibrated on its out-of-fold answers (5 copies, each trained without a fifth "
                "of the rows)"
            )
    return notes


def baseline_meta(report_baseline: Sequence[TierBaseline], tiers: Sequence[str]) -> dict[str, Any]:
    """A calibration's per-tier baseline as stored in a version's meta.json."""
    return {
        tier: {
            "share": b.share,
            "agreement": b.agreement,
            "mean_confidence": b.mean_confidence,
            "answered": b.answered,
        }
        for tier, b in zip(tiers, report_baseline, strict=True)
    }


def stored_baselines(home: Path, workflow: str, cascade: str) -> dict[str, dict[str, Any]]:
    """Per model, the baseline of the newest stored version (what live decisions should
    look like); carried into the next version."""
    latest = ClassifierVersions(home, workflow, cascade).latest()
    if latest is None:
        return {}
    found: dict[str, dict[str, Any]] = ClassifierVersions.read_meta(latest).get(
        "baseline_by_model", {}
    )
    return found


@dataclass
class AuditCalibration:
    calibration: Calibration
    """Thresholds; accuracy is the weighted agreement with the last tier (or corrections)."""
    escalated: int
    """Items the last tier answered (each has every tier's answer)."""
    audited: int
    """Audited answers of cheap tiers, each weighing 1 / audit share."""
    target: float
    interval: tuple[float, float]
    baseline: list[TierBaseline]
    version: Path | None = None
    retrained: dict[str, MLStep] = field(default_factory=dict)
    """Per ml tier's name, the tier retrained on its training rows and the decisions' labels
    (with `inputs`): the thresholds are for it, not for the tier that made the decisions."""
    notes: list[str] = field(default_factory=list)
    """What retraining did, one line per ml tier."""


def retrain(step: MLStep, inputs: Sequence[Any], labels: Sequence[str]) -> MLStep:
    """`step` trained again, with its options, on its training rows and `inputs` labelled
    `labels` (the later label winning for an input seen twice; an input among the training
    rows takes its new label). Raises `ConfigError` when its training rows are unknown."""
    if step.training is None:
        raise ConfigError(
            f"ml tier {step.name!r} cannot be retrained: its training rows are unknown (a "
            "model file from elsewhere); train it from a labelled file (`train:`)"
        )
    new: dict[str, str] = {}
    for value, label in zip(inputs, labels, strict=True):
        new[step.text(value)] = label
    kept = [(t, y) for t, y in zip(*step.training, strict=True) if t not in new]
    try:
        return step.retrained(
            [t for t, _ in kept] + list(new), [y for _, y in kept] + list(new.values())
        )
    except ConfigError as e:
        raise ConfigError(
            f"retraining ml tier {step.name!r} on its training rows and the labelled decisions: "
            f"{e} (a label new to the tier, from a person's correction, needs a second item "
            "corrected to it)"
        ) from e


def decision_inputs(store: Any, rows: Sequence[Any], cascade: Cascade) -> list[Any]:
    """Per recorded decision of `cascade` (`Store.cascade_decisions`), its input as the run
    store kept it with the item's steps (None where it was not kept)."""
    found: list[Any] = []
    for row in rows:
        value = None
        steps = store.item_rows("steps", row["item_id"]) if row["item_id"] else []
        for recorded in steps:
            if recorded["path"].split("/")[-1] == cascade.name and recorded["input"] is not None:
                try:
                    value = json.loads(recorded["input"])
                except (TypeError, ValueError):
                    value = recorded["input"]
                break
        found.append(value)
    return found


def calibrate_from_audits(
    cascade: Cascade,
    rows: Sequence[Any],
    *,
    max_drop: float = 0.02,
    current: Sequence[float] | None = None,
    expected: Mapping[str, Mapping[str, Any]] | None = None,
    inputs: Sequence[Any] | None = None,
) -> AuditCalibration:
    """Thresholds from recorded decisions (`Store.cascade_decisions`), escalated items as they
    are and audited ones weighted by 1 / the cascade's audit share (`monitoring.audit_answers`);
    the truth is the last tier's label, people's corrections winning.

    With the calibrated baseline (`expected`, per tier as `calibration.baseline`), each cheap
    tier gets the lowest threshold at which its answers agree with the last tier as often as
    they did when calibrated, less `max_drop` (`calibrate_agreement`): where the traffic
    drifted, that is a higher threshold. Without one, the cascade as a whole must agree with
    the last tier on at least 1 − `max_drop` of the items.

    With `inputs` (each row's input to the cascade, None where unknown), each ml tier is first
    retrained (`retrain`) on its training rows and the inputs the last tier (or a person)
    labelled: what the traffic now holds. The thresholds are then chosen on the retrained
    tier's out-of-fold answers (`out_of_fold`: each from a copy trained without a fifth of
    those inputs), never on its answers to rows it learned. Rows without an input are left
    out. The retrained tiers are in `retrained`."""
    tiers = [s.name for s, _ in cascade.tiers]
    if cascade.audit <= 0:
        raise ConfigError(
            f"cascade {cascade.name!r} audits nothing (audit: 0): set `audit:` (e.g. 0.05) so "
            "that some of the cheap tiers' answers are checked by the last tier"
        )
    used_inputs: list[Any] = []
    if inputs is not None:
        if len(inputs) != len(rows):
            raise ValueError(f"{len(inputs)} inputs for {len(rows)} decisions")
        known = [
            (row, value)
            for row, value in zip(rows, inputs, strict=True)
            if value is not None and in_audit_answers(row, tiers[-1], cascade.audit)
        ]
        rows = [row for row, _ in known]
        used_inputs = [value for _, value in known]
    said, truth, weights, audited = audit_answers(rows, tiers, cascade.audit)
    if audited < 10 or len(truth) < 20:
        raise ConfigError(
            f"calibrating {cascade.name!r} from audits needs at least 10 audited answers and 20 "
            f"decisions; the store has {audited} audited of {len(truth)} usable: run more items"
        )
    retrained: dict[str, MLStep] = {}
    notes: list[str] = []
    if inputs is not None:
        for index, (step, _) in enumerate(cascade.tiers[:-1]):
            if not isinstance(step, MLStep):
                continue
            new = retrain(step, used_inputs, truth)
            oof = out_of_fold(new, used_inputs)
            assert oof is not None
            said[index] = oof
            retrained[step.name] = new
            assert new.training is not None
            notes.append(
                f"ml tier {step.name!r} retrained on {len(new.training[0])} rows (its "
                f"{len(step.training[0]) if step.training else 0} training rows and "
                f"{len(set(map(step.text, used_inputs)))} inputs labelled by "
                f"{tiers[-1]!r} or people); thresholds chosen on its out-of-fold answers"
            )
    agreements = [
        None if expected is None or expected.get(t, {}).get("agreement") is None
        else float(expected[t]["agreement"]) - max_drop
        for t in tiers[:-1]
    ]  # fmt: skip
    if any(a is not None for a in agreements):
        target = min(a for a in agreements if a is not None)
        calibration = calibrate_agreement(said, truth, [*agreements, None], weights, current)
    else:
        target = 1.0 - max_drop
        calibration = calibrate(said, truth, target, current, weights)
    return AuditCalibration(
        calibration=calibration,
        escalated=len(truth) - audited,
        audited=audited,
        target=target,
        interval=wilson(calibration.accuracy * len(truth), len(truth)),
        baseline=baseline(said, calibration.thresholds, weights),
        retrained=retrained,
        notes=notes,
    )
