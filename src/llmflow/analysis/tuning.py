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

import json
import random
import time
from collections.abc import Iterator, Sequence
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
from .calibration import Calibration, calibrate, simulate


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


def tuned(cascade: Cascade, home: Path, workflow: str) -> Cascade:
    """`cascade` with its newest stored version applied: the ml tier's model, the tiers'
    thresholds, and thresholds calibrated per model (over the cascade's own). Unchanged
    when nothing is stored."""
    latest = ClassifierVersions(home, workflow, cascade.name).latest()
    if latest is None:
        return cascade
    meta = ClassifierVersions.read_meta(latest)
    thresholds: dict[str, float] = meta.get("thresholds", {})
    tiers: list[tuple[Step[Any, Any], float]] = []
    for step, threshold in cascade.tiers:
        stored = latest / "model.skops"
        if isinstance(step, MLStep) and step.source != stored and stored.is_file():
            step = MLStep.load(step.name, stored, text=step.text)
        tiers.append((step, float(thresholds.get(step.name, threshold))))
    by_model = dict(cascade.by_model)
    for model, named in meta.get("thresholds_by_model", {}).items():
        by_model[model] = [float(named.get(s.name, t)) for s, t in tiers]
    return Cascade(cascade.name, tiers, by_model=by_model, timeout_s=cascade.timeout_s)


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
    model = ml or next((s for s, _ in cascade.tiers if isinstance(s, MLStep)), None)
    if model is not None:
        model.save(path / "model.skops")
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


async def answers(cascade: Cascade, texts: Sequence[str], gateway: Gateway) -> TierAnswers:
    """Run every tier on every text (ml tiers in one batch)."""
    result = TierAnswers(tiers=[s.name for s, _ in cascade.tiers])
    for step, _ in cascade.tiers:
        said: list[Label] = []
        costs: list[Decimal] = []
        seconds: list[float] = []
        if isinstance(step, MLStep):
            started = time.perf_counter()
            said = step.predict([step.text(t) for t in texts])
            each = (time.perf_counter() - started) / max(1, len(texts))
            costs, seconds = [Decimal(0)] * len(texts), [each] * len(texts)
        else:
            for text in texts:
                meter = _Meter()
                started = time.perf_counter()
                output = await run(step, text, gateway=gateway, hooks=[meter])
                seconds.append(time.perf_counter() - started)
                costs.append(meter.cost)
                label, confidence = read_label(output)
                said.append(
                    Label(label=label, confidence=1.0 if confidence is None else confidence)
                )
        result.answers.append(said)
        result.costs.append(costs)
        result.seconds.append(seconds)
    return result


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
    target: float,
    validation_share: float = 0.5,
    current: Sequence[float] | None = None,
) -> CalibrationReport:
    """Thresholds chosen on a validation split of the rows, checked on the rest."""
    if len(truth) < 4:
        raise ConfigError("calibration needs at least 4 labelled rows (better: 100 or more)")
    val, test = split(len(truth), validation_share)
    calibration = calibrate(
        [_pick(a, val) for a in tier_answers.answers], _pick(truth, val), target, current
    )
    accuracy, shares = simulate(
        [_pick(a, test) for a in tier_answers.answers], _pick(truth, test), calibration.thresholds
    )
    n = len(truth)
    return CalibrationReport(
        calibration=calibration,
        test_accuracy=accuracy,
        test_shares=shares,
        tier_accuracy=[
            sum(a.label == t for a, t in zip(tier, truth, strict=True)) / n
            for tier in tier_answers.answers
        ],
        cost_per_item=[c / n for c in tier_answers.cost],
        validation=len(val),
        test=len(test),
    )


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
