"""Tuning a workflow's classifier cascades from data, and applying what was learned.

- `answers` runs every tier of a cascade on labelled texts and meters each tier's cost.
- `calibrate_cascade` picks per-tier thresholds on a validation split, checks them on the
  held-out rest, and stores them as a new classifier version.
- `distill` trains the ml tier from the run history (the LLM's own decisions, with people's
  corrections taking precedence), calibrates it against the LLM, and stores it.
- `tuned` gives a cascade with its newest stored version applied; a workflow calls it when it
  is built, so a run after `llmflow calibrate` or `llmflow distill` uses the result.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models.gateway import Gateway, ModelCall
from ..patterns.cascade import Cascade
from ..runtime.runner import run
from ..steps.base import Step
from ..steps.context import RunContext, RunHooks
from ..steps.label import Label, read_label
from ..steps.ml import MLStep
from ..store.classifiers import ClassifierVersions
from ..store.sqlite import RunStore
from .calibration import (
    Calibration,
    TierBaseline,
    baseline,
    calibrate,
    calibrate_agreement,
    simulate,
    wilson,
)
from .monitoring import audit_answers


def walk(root: Step[Any, Any]) -> Iterator[Step[Any, Any]]:
    """Every step in `root`'s tree, `root` first, depth first."""
    yield root
    for _, child in root.children():
        yield from walk(child)


def find_step(root: Step[Any, Any], name: str) -> Step[Any, Any]:
    """The step called `name` anywhere in `root`'s tree (the first found, depth first)."""
    found = next((step for step in walk(root) if step.name == name), None)
    if found is None:
        names = sorted({step.name for step in walk(root) if step.name})
        raise ConfigError(f"the workflow has no step {name!r} (its steps: {', '.join(names)})")
    return found


def cascades(root: Step[Any, Any]) -> list[Cascade]:
    """Every cascade in `root`'s tree."""
    return [step for step in walk(root) if isinstance(step, Cascade)]


def find_cascade(root: Step[Any, Any], name: str) -> Cascade:
    step = find_step(root, name)
    if not isinstance(step, Cascade):
        raise ConfigError(
            f"step {name!r} is a {step.kind} step, not a cascade: calibrate and distill tune "
            "a cascade's tiers"
        )
    return step


class StaleVersionWarning(UserWarning):
    """A stored classifier version was made for other training data or options than the
    workflow's: it is not applied."""


def stale(cascade: Cascade, meta: dict[str, Any], version: Path) -> str | None:
    """Why the stored `version` no longer fits `cascade` (its ml tier's training data or
    options changed since), or None when it fits or nothing tells."""
    ml = next((s for s, _ in cascade.tiers if isinstance(s, MLStep)), None)
    current = None if ml is None else ml.data_sha256
    if current is None:
        return None  # the workflow's ml tier is a saved model: the version applies
    made_for = meta.get("workflow_data_sha256")
    if made_for is None:  # made before versions followed their data: check the model's own
        stored = version / "model.skops"
        if not stored.is_file():
            return None
        made_for = MLStep.load("ml", stored).data_sha256
    if made_for == current:
        return None
    return (
        f"classifier version {version} of {cascade.name!r} was made for other training data "
        f"or options than the workflow's now: not applied, the ml tier is the one trained "
        f"from the workflow's data, at its default thresholds. Calibrate it again: "
        f"llmflow calibrate <workflow> {cascade.name} --data <labelled.jsonl>"
    )


def tuned(cascade: Cascade, home: Path, workflow: str) -> Cascade:
    """`cascade` with its newest stored version applied: the ml tier's model, the tiers'
    thresholds, and thresholds calibrated per model (over the cascade's own). Unchanged
    when nothing is stored, or when the version was made for other training data or options
    than the cascade's ml tier has now (a `StaleVersionWarning` says so): a workflow whose
    `train:` data changed runs the model trained from it, never the old one."""
    latest = ClassifierVersions(home, workflow, cascade.name).latest()
    if latest is None:
        return cascade
    meta = ClassifierVersions.read_meta(latest)
    why = stale(cascade, meta, latest)
    if why is not None:
        warnings.warn(why, StaleVersionWarning, stacklevel=2)
        return cascade
    thresholds: dict[str, float] = meta.get("thresholds", {})
    tiers: list[tuple[Step[Any, Any], float]] = []
    for step, threshold in cascade.tiers:
        stored = latest / "model.skops"
        if isinstance(step, MLStep) and step.source != stored and stored.is_file():
            step = MLStep.load(step.name, stored, text=step.text,
                               out_of_scope=step.out_of_scope)  # fmt: skip
        tiers.append((step, float(thresholds.get(step.name, threshold))))
    by_model = dict(cascade.by_model)
    for model, named in meta.get("thresholds_by_model", {}).items():
        by_model[model] = [float(named.get(s.name, t)) for s, t in tiers]
    return Cascade(
        cascade.name, tiers, by_model=by_model, audit=cascade.audit, timeout_s=cascade.timeout_s
    )


def stored_by_model(home: Path, workflow: str, cascade: str) -> dict[str, dict[str, float]]:
    """Per-model thresholds of the newest stored version (to carry into the next one)."""
    latest = ClassifierVersions(home, workflow, cascade).latest()
    if latest is None:
        return {}
    found: dict[str, dict[str, float]] = ClassifierVersions.read_meta(latest).get(
        "thresholds_by_model", {}
    )
    return found


def ml_tier(cascade: Cascade) -> MLStep:
    for step, _ in cascade.tiers:
        if isinstance(step, MLStep):
            return step
    raise ConfigError(f"cascade {cascade.name!r} has no ml tier to train")


def save_version(
    cascade: Cascade,
    home: Path,
    workflow: str,
    *,
    thresholds: Sequence[float] | None = None,
    by_model: dict[str, dict[str, float]] | None = None,
    ml: MLStep | None = None,
    meta: dict[str, Any],
) -> Path:
    """Store the ml tier (the given one, else the cascade's) and thresholds as a new version;
    `by_model` holds thresholds calibrated for particular models (by tier name)."""
    versions = ClassifierVersions(home, workflow, cascade.name)
    path = versions.create()
    template = next((s for s, _ in cascade.tiers if isinstance(s, MLStep)), None)
    model = ml or template
    if model is not None:
        model.save(path / "model.skops")
        meta = {
            "data_sha256": model.data_sha256,
            "workflow_data_sha256": template.data_sha256 if template else None,
            "options": model.options,
            **meta,
        }
    current = thresholds or [t for _, t in cascade.tiers]
    names = [step.name for step, _ in cascade.tiers]
    ClassifierVersions.write_meta(
        path,
        {
            "created_at": time.time(),
            "thresholds": dict(zip(names, current, strict=True)),
            "thresholds_by_model": by_model or {},
            **meta,
        },
    )
    return path


# -- answers of every tier ---------------------------------------------------------------------


@dataclass
class TierAnswers:
    """Every tier's answer on each text, and what each answer cost."""

    tiers: list[str]
    answers: list[list[Label]] = field(default_factory=list)
    """One list per tier, aligned with the texts."""
    costs: list[list[Decimal]] = field(default_factory=list)
    """Dollars per tier and text."""
    seconds: list[list[float]] = field(default_factory=list)
    """Wall-clock seconds per tier and text (an ml tier's batch time, spread evenly)."""

    @property
    def cost(self) -> list[Decimal]:
        """Dollars per tier, over all texts."""
        return [sum(c, Decimal(0)) for c in self.costs]


class _Meter(RunHooks):
    def __init__(self) -> None:
        self.cost = Decimal(0)

    def on_model_call(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        self.cost += call.cost or 0


async def answers(
    cascade: Cascade,
    texts: Sequence[str],
    gateway: Gateway,
    *,
    needed: Callable[[int, list[list[Label]]], Iterable[int]] | None = None,
    concurrency: int = 64,
) -> TierAnswers:
    """Run every tier on every text: ml tiers in one batch, other tiers concurrently (the
    gateway's limits still apply). `needed(tier, answers so far)` gives the rows a tier must
    answer (all when None); a row left out gets an abstention at no cost, read by nothing."""
    result = TierAnswers(tiers=[s.name for s, _ in cascade.tiers])
    gate = asyncio.Semaphore(concurrency)
    for tier, (step, _) in enumerate(cascade.tiers):
        rows = range(len(texts)) if needed is None else sorted(set(needed(tier, result.answers)))
        said = [Label(label=None, confidence=0.0)] * len(texts)
        costs = [Decimal(0)] * len(texts)
        seconds = [0.0] * len(texts)
        if isinstance(step, MLStep):
            started = time.perf_counter()
            predicted = step.predict([step.text(texts[i]) for i in rows])
            each = (time.perf_counter() - started) / max(1, len(predicted))
            for i, label in zip(rows, predicted, strict=True):
                said[i], seconds[i] = label, each
        else:
            done = await asyncio.gather(*(_answer(step, texts[i], gateway, gate) for i in rows))
            for i, (label, cost, took) in zip(rows, done, strict=True):
                said[i], costs[i], seconds[i] = label, cost, took
        result.answers.append(said)
        result.costs.append(costs)
        result.seconds.append(seconds)
    return result


async def _answer(
    step: Step[Any, Any], text: str, gateway: Gateway, gate: asyncio.Semaphore
) -> tuple[Label, Decimal, float]:
    async with gate:
        meter = _Meter()
        started = time.perf_counter()
        output = await run(step, text, gateway=gateway, hooks=[meter])
        took = time.perf_counter() - started
    label, confidence = read_label(output)
    return (
        Label(label=label, confidence=1.0 if confidence is None else confidence),
        meter.cost,
        took,
    )


def out_of_fold(
    ml: MLStep, texts: Sequence[str], folds: int = 5, seed: int = 7
) -> list[Label] | None:
    """The ml tier's answers on `texts`, each from a copy trained without the fold that text
    is in (its training rows with those texts left out): honest answers on rows it was
    trained on. None when its training rows are not known (a model file from elsewhere)."""
    if ml.training is None:
        return None
    train_texts, train_labels = ml.training
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    said: list[Label] = [Label(label=None, confidence=0.0)] * len(texts)
    for fold in range(folds):
        part = order[fold::folds]
        held = {ml.text(texts[i]) for i in part}
        keep = [j for j, t in enumerate(train_texts) if t not in held]
        copy = ml.retrained([train_texts[j] for j in keep], [train_labels[j] for j in keep])
        for i, label in zip(part, copy.predict([ml.text(texts[i]) for i in part]), strict=True):
            said[i] = label
    return said


def overlap(ml: MLStep, texts: Sequence[str]) -> int | None:
    """How many of `texts` the ml tier was trained on (None: its training rows are unknown)."""
    if ml.training is None:
        return None
    trained = set(ml.training[0])
    return sum(ml.text(t) in trained for t in texts)


# -- calibration -----------------------------------------------------------------------------


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


def _pick(values: Sequence[Any], indices: Sequence[int]) -> list[Any]:
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
    validation = [_pick(a, val) for a in tier_answers.answers]
    if max_drop is not None:
        last = validation[-1]
        target = (
            sum(a.label == t for a, t in zip(last, _pick(truth, val), strict=True)) / len(val)
            - max_drop
        )
    assert target is not None
    calibration = calibrate(validation, _pick(truth, val), target, current)
    accuracy, shares = simulate(
        [_pick(a, test) for a in tier_answers.answers], _pick(truth, test), calibration.thresholds
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


# -- distillation from the run history -------------------------------------------------------


@dataclass
class Distillation:
    examples: int
    """Decisions learned from (corrections included)."""
    corrections: int
    """Of which a person corrected."""
    agreement: float
    """Held-out agreement of the ml tier with the LLM's labels, on the items it answers."""
    filter_agreement: float
    """Held-out agreement of the whole filter (ml where sure, else the LLM) with the LLM
    alone: what `target_agreement` bounds."""
    share: float
    """Held-out share of items the ml tier answers at the calibrated threshold."""
    threshold: float
    llm_cost_per_item: Decimal
    """Dollars one LLM decision cost, on average over the history."""
    version: Path | None = None

    @property
    def saving_per_1000(self) -> Decimal:
        """Dollars saved per 1,000 items that reach the LLM tier today."""
        return self.llm_cost_per_item * Decimal(1000) * Decimal(str(round(self.share, 4)))


def history(store: RunStore, step: str, workflow: str | None) -> tuple[list[str], list[str], int]:
    """Texts and labels of an LLM classifier's recorded decisions (the latest per input),
    a person's correction taking precedence. Returns texts, labels and corrections used."""
    latest: dict[str, tuple[str, bool]] = {}
    for row in store.decisions(step, workflow):
        text = json.loads(row["input"]) if row["input"] else None
        if not isinstance(text, str):
            continue  # a classifier tier's input is its text; other llm steps are not tiers
        if row["correction"] is not None:
            latest[text] = (row["correction"], True)
            continue
        label, _ = read_label(_label_value(json.loads(row["output"] or "null")))
        if label is not None and not latest.get(text, ("", False))[1]:
            latest[text] = (label, False)
    texts = list(latest)
    return texts, [latest[t][0] for t in texts], sum(c for _, c in latest.values())


def _label_value(output: Any) -> Any:
    """A recorded output as `read_label` reads it: a Label's dict, or a plain label."""
    if isinstance(output, dict) and "label" in output:
        return Label(label=output["label"], confidence=output.get("confidence", 1.0))
    if isinstance(output, dict) and "value" in output:
        return output["value"]
    return output


def distill(
    cascade: Cascade,
    store: RunStore,
    *,
    workflow: str,
    home: Path,
    target_agreement: float = 0.97,
    min_examples: int = 20,
) -> Distillation:
    """Train the ml tier on the LLM's recorded decisions and calibrate it against the LLM:
    the ml threshold is the lowest at which the filter (ml where sure, else the LLM) still
    agrees with the LLM alone on `target_agreement` of held-out decisions."""
    texts, labels, corrections = history(store, cascade.name, workflow)
    if len(texts) < min_examples or len(set(labels)) < 2:
        raise ConfigError(
            f"distilling {cascade.name!r} needs at least {min_examples} recorded LLM decisions "
            f"with two or more labels; the history of {workflow!r} has {len(texts)} "
            f"({len(set(labels))} labels): run the workflow on more items first"
        )
    template = ml_tier(cascade)
    train, held = split(len(texts), 0.75)
    student = MLStep.train(template.name, _pick(texts, train), _pick(labels, train))
    said = student.predict(_pick(texts, held))
    teacher = [Label(label=label, confidence=1.0) for label in _pick(labels, held)]
    calibration = calibrate([said, teacher], _pick(labels, held), target_agreement)
    threshold = calibration.thresholds[0]
    accepted = [s for s in said if s.confidence >= threshold]
    agreement = (
        sum(s.label == t for s, t in zip(said, _pick(labels, held), strict=True) if s in accepted)
        / len(accepted)
        if accepted
        else 0.0
    )
    final = MLStep.train(template.name, texts, labels, text=template.text)
    paid = [
        Decimal(row["cost"] or 0)
        for row in store.call_costs()
        if row["workflow"] == workflow
        and not row["cached"]
        and f"/{cascade.name}/" in f"/{row['step_path']}/"
    ]
    per_item = sum(paid, Decimal(0)) / len(paid) if paid else Decimal(0)
    result = Distillation(
        examples=len(texts),
        corrections=corrections,
        agreement=agreement,
        filter_agreement=calibration.accuracy,
        share=len(accepted) / len(said) if said else 0.0,
        threshold=threshold,
        llm_cost_per_item=per_item,
    )
    thresholds = [threshold if s is template else t for s, t in cascade.tiers]
    result.version = save_version(
        cascade,
        home,
        workflow,
        thresholds=thresholds,
        ml=final,
        meta={
            "source": "distilled from the run history",
            "examples": len(texts),
            "corrections": corrections,
            "agreement_with_llm": agreement,
            "ml_share": result.share,
        },
    )
    return result


# -- production: baselines and calibration from live audits ----------------------------------


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


def calibrate_from_audits(
    cascade: Cascade,
    rows: Sequence[Any],
    *,
    max_drop: float = 0.02,
    current: Sequence[float] | None = None,
    expected: Mapping[str, Mapping[str, Any]] | None = None,
) -> AuditCalibration:
    """Thresholds from recorded decisions (`Store.cascade_decisions`), escalated items as they
    are and audited ones weighted by 1 / the cascade's audit share (`monitoring.audit_answers`);
    the truth is the last tier's label, people's corrections winning.

    With the calibrated baseline (`expected`, per tier as `calibration.baseline`), each cheap
    tier gets the lowest threshold at which its answers agree with the last tier as often as
    they did when calibrated, less `max_drop` (`calibrate_agreement`): where the traffic
    drifted, that is a higher threshold. Without one, the cascade as a whole must agree with
    the last tier on at least 1 − `max_drop` of the items."""
    tiers = [s.name for s, _ in cascade.tiers]
    if cascade.audit <= 0:
        raise ConfigError(
            f"cascade {cascade.name!r} audits nothing (audit: 0): set `audit:` (e.g. 0.05) so "
            "that some of the cheap tiers' answers are checked by the last tier"
        )
    said, truth, weights, audited = audit_answers(rows, tiers, cascade.audit)
    if audited < 10 or len(truth) < 20:
        raise ConfigError(
            f"calibrating {cascade.name!r} from audits needs at least 10 audited answers and 20 "
            f"decisions; the store has {audited} audited of {len(truth)} usable: run more items"
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
    )
