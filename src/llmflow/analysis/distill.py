"""Distillation: the ml tier of a cascade trained from the run history (the LLM's own
decisions, people's corrections taking precedence), calibrated against the LLM, and stored
as a new classifier version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..patterns.cascade import Cascade
from ..steps.label import Label, read_label
from ..steps.ml import MLStep
from ..store.sqlite import RunStore
from .calibration import (
    calibrate,
)
from .cascade_calibration import pick, split
from .cascade_versions import (
    ml_tier,
    save_version,
)


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
    # The tier reads `template.text(input)` when it runs (the triage's priority tier adds the
    # urgency cues code finds): it learns from the same, not from the raw inputs.
    texts = [template.text(t) for t in texts]
    train, held = split(len(texts), 0.75)
    student = MLStep.train(template.name, pick(texts, train), pick(labels, train))
    said = student.predict(pick(texts, held))
    teacher = [Label(label=label, confidence=1.0) for label in pick(labels, held)]
    calibration = calibrate([said, teacher], pick(labels, held), target_agreement)
    threshold = calibration.thresholds[0]
    accepted = [s for s in said if s.confidence >= threshold]
    agreement = (
        sum(s.label == t for s, t in zip(said, pick(labels, held), strict=True) if s in accepted)
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
