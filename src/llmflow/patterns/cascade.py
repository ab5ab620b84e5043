"""Cascade: cheap tiers first (rules → ML → a small LLM → a large one), escalating only when
a tier's confidence is below its threshold.

Each tier is a step answering a label, or an object with `label` and `confidence` (an ml or
rules step's `Label`). A tier that abstains (label None) or is unsure passes the input on;
the last tier always answers (an llm tier with no confidence counts as sure). The result
records which tier answered and what each tier tried said.

Thresholds may be set per model of the last (LLM) tier: whether a cheap tier's answer is
good enough depends on how good the LLM it would escalate to is. `by_model` maps a model
name to thresholds; the run's model picks them, and other models use the tiers' own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..errors import DefinitionError
from ..steps.base import Step
from ..steps.context import RunContext
from ..steps.label import read_label


class Attempt(BaseModel):
    tier: str
    label: str | None
    confidence: float | None


class CascadeResult(BaseModel):
    """The label, its confidence, and the tier that gave it."""

    label: str
    confidence: float | None
    tier: str
    """The step name of the answering tier."""
    attempts: list[Attempt]
    """Every tier tried, in order (the last one answered)."""


class Cascade(Step[Any, CascadeResult]):
    """Try `tiers` in order; accept the first whose confidence clears its threshold."""

    kind = "cascade"

    def __init__(
        self,
        name: str,
        tiers: Sequence[tuple[Step[Any, Any], float]],
        *,
        by_model: Mapping[str, Sequence[float]] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        if not tiers:
            raise DefinitionError(f"cascade {name!r} needs at least one tier")
        names = [step.name for step, _ in tiers]
        if len(set(names)) != len(names):
            raise DefinitionError(f"cascade {name!r}: tier names must be unique: {names}")
        self.tiers = list(tiers)
        self.by_model = {m: list(t) for m, t in (by_model or {}).items()}
        """Thresholds per model of the last tier (calibrated for it)."""
        for model, thresholds in self.by_model.items():
            if len(thresholds) != len(self.tiers):
                raise DefinitionError(
                    f"cascade {name!r}: {model!r} needs {len(self.tiers)} thresholds"
                )

    def thresholds(self, ctx: RunContext) -> list[float]:
        """The thresholds for the model the last tier runs on in `ctx`."""
        if self.by_model:
            last = self.tiers[-1][0]
            model = getattr(last, "model", None) or ctx.model or ctx.gateway.settings.model
            if model in self.by_model:
                return self.by_model[model]
        return [t for _, t in self.tiers]

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [(step.name, step) for step, _ in self.tiers]  # as recorded: path/tier

    async def run(self, input: Any, ctx: RunContext) -> CascadeResult:
        attempts: list[Attempt] = []
        last = len(self.tiers) - 1
        thresholds = self.thresholds(ctx)
        for index, (step, _) in enumerate(self.tiers):
            threshold = thresholds[index]
            said = await step.invoke(input, ctx, step.name)
            label, confidence = read_label(said)
            attempt = Attempt(tier=step.name, label=label, confidence=confidence)
            attempts.append(attempt)
            sure = confidence is None or confidence >= threshold
            if attempt.label is not None and (sure or index == last):
                return CascadeResult(
                    label=attempt.label, confidence=confidence, tier=step.name, attempts=attempts
                )
        raise ValueError(f"every tier of cascade {self.name!r} abstained")

    def with_thresholds(self, thresholds: Sequence[float]) -> Cascade:
        """A copy with new thresholds (e.g. from `runtime.calibration.calibrate`)."""
        if len(thresholds) != len(self.tiers):
            raise DefinitionError(f"cascade {self.name!r} has {len(self.tiers)} tiers")
        tiers = [(step, t) for (step, _), t in zip(self.tiers, thresholds, strict=True)]
        return Cascade(self.name, tiers, by_model=self.by_model, timeout_s=self.timeout_s)


def cascade(
    name: str, *tiers: tuple[Step[Any, Any], float], timeout_s: float | None = None
) -> Cascade:
    """`cascade(name, (rules_step, 1.0), (ml_step, 0.9), (llm_step, 0))`."""
    return Cascade(name, tiers, timeout_s=timeout_s)
