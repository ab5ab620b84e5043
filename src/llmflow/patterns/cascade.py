"""Cascade: cheap tiers first (rules → ML → a small LLM → a large one), escalating only when
a tier's confidence is below its threshold.

Each tier is a step answering a label, or an object with `label` and `confidence` (an ml or
rules step's `Label`). A tier that abstains (label None) or is unsure passes the input on;
the last tier always answers (an llm tier with no confidence counts as sure). The result
records which tier answered and what each tier tried said.

Thresholds may be set per model of the last (LLM) tier: whether a cheap tier's answer is
good enough depends on how good the LLM it would escalate to is. `by_model` maps a model
name to thresholds; the run's model picks them, and other models use the tiers' own.

A live audit: with `audit=0.05`, 5 % of the items a cheap tier answers are also answered by the
last tier (recorded as `<cascade>/audit`, its label in `CascadeResult.audit`). Which items is
decided by a hash of the input, so a rerun audits the same ones. The run store keeps every
decision (`Store.add_decision`), and `llmflow eval --live` compares the audited agreement, the
share each tier answers and its confidence with what calibration measured.
"""

from __future__ import annotations

import hashlib
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
    audit: Attempt | None = None
    """The last tier's answer, when it audited a cheap tier's answer."""


class Cascade(Step[Any, CascadeResult]):
    """Try `tiers` in order; accept the first whose confidence clears its threshold."""

    kind = "cascade"

    def __init__(
        self,
        name: str,
        tiers: Sequence[tuple[Step[Any, Any], float]],
        *,
        by_model: Mapping[str, Sequence[float]] | None = None,
        audit: float = 0.0,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        if not 0 <= audit <= 1:
            raise DefinitionError(f"cascade {name!r}: audit is a share in [0, 1], not {audit}")
        self.audit = audit
        """Share of cheap tiers' answers the last tier also answers (a live audit)."""
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
            # `local:<name-or-path>` without thresholds of its own takes those calibrated for
            # `local` (SmolLM2): cautious for a stronger model, which then answers only what
            # the cheap tiers leave to it. (Qwen2.5-Coder-1.5B has its own for the triage:
            # bench/RESULTS-triage-thresholds-qwen2.5-coder-1.5b.md.)
            if model.startswith("local:") and "local" in self.by_model:
                return self.by_model["local"]
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
                audit = None
                if index < last and self.audited(input):
                    judge = self.tiers[-1][0]
                    audit_label, audit_confidence = read_label(
                        await judge.invoke(input, ctx, "audit")
                    )
                    audit = Attempt(tier=judge.name, label=audit_label,
                                    confidence=audit_confidence)  # fmt: skip
                return CascadeResult(
                    label=attempt.label, confidence=confidence, tier=step.name,
                    attempts=attempts, audit=audit,
                )  # fmt: skip
        raise ValueError(f"every tier of cascade {self.name!r} abstained")

    def audited(self, input: Any) -> bool:
        """Whether a cheap tier's answer on `input` is audited (by a hash of the input)."""
        if self.audit <= 0:
            return False
        digest = hashlib.sha256(f"{self.name}\x00{input}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.audit

    def with_thresholds(self, thresholds: Sequence[float]) -> Cascade:
        """A copy with new thresholds (e.g. from `runtime.calibration.calibrate`)."""
        if len(thresholds) != len(self.tiers):
            raise DefinitionError(f"cascade {self.name!r} has {len(self.tiers)} tiers")
        tiers = [(step, t) for (step, _), t in zip(self.tiers, thresholds, strict=True)]
        return Cascade(
            self.name, tiers, by_model=self.by_model, audit=self.audit, timeout_s=self.timeout_s
        )


def cascade(
    name: str,
    *tiers: tuple[Step[Any, Any], float],
    audit: float = 0.0,
    timeout_s: float | None = None,
) -> Cascade:
    """`cascade(name, (rules_step, 1.0), (ml_step, 0.9), (llm_step, 0), audit=0.05)`."""
    return Cascade(name, tiers, audit=audit, timeout_s=timeout_s)
