"""Every tier's answer on labelled texts, each tier's cost metered: what calibration and
evaluation are computed from."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..models.gateway import Gateway, ModelCall
from ..patterns.cascade import Cascade
from ..runtime.runner import run
from ..steps.base import Step
from ..steps.context import RunContext, RunHooks
from ..steps.label import Label, read_label
from ..steps.ml import MLStep


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
        left = Counter(train_labels[j] for j in keep)  # a label left once cannot be learned
        keep = [j for j in keep if left[train_labels[j]] > 1]
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
