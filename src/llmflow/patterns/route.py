"""Routing: a classifier picks one branch from a declared set; only that branch runs.

The classifier is any step (an llm step constrained to the branch names by default; code or
ml later) returning a branch name, or an object with `label` (and optionally `confidence`).
A name outside the set (or an invalid classifier output), or a confidence under
`min_confidence` (when the classifier gives one), goes to the default branch.
The decision is recorded as the classifier's output (`route/classify`), and the branch runs
as `route/<branch>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from ..errors import DefinitionError, OutputValidationError, StepError
from ..steps.base import Step
from ..steps.context import RunContext
from ..steps.label import read_label
from ..steps.llm import llm


class RouteDecision(BaseModel):
    """Which branch a route took, and why."""

    label: str
    """The branch that ran."""
    confidence: float | None = None
    """The classifier's confidence, when it gives one."""
    chosen: str | None = None
    """What the classifier said, when the route fell back to the default."""


class Route(Step[Any, Any]):
    """Classify, then run exactly one branch (or the default)."""

    kind = "route"

    def __init__(
        self,
        name: str,
        classifier: Step[Any, Any],
        branches: Mapping[str, Step[Any, Any]],
        *,
        default: str | None = None,
        min_confidence: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        if not branches:
            raise DefinitionError(f"route {name!r} needs at least one branch")
        if default is not None and default not in branches:
            raise DefinitionError(
                f"route {name!r}: default {default!r} is not one of {list(branches)}"
            )
        self.classifier = classifier
        self.branches = dict(branches)
        self.default = default
        self.min_confidence = min_confidence

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [("classify", self.classifier), *self.branches.items()]

    async def run(self, input: Any, ctx: RunContext) -> Any:
        decision = await _Decide(self).invoke(input, ctx, "classify")
        return await self.branches[decision.label].invoke(input, ctx, decision.label)


class _Decide(Step[Any, RouteDecision]):
    """The classifier, run under the name `classify`, its answer recorded as a decision."""

    def __init__(self, route: Route) -> None:
        super().__init__("classify")
        self.route = route
        self.kind = route.classifier.kind

    async def run(self, input: Any, ctx: RunContext) -> RouteDecision:
        r = self.route
        try:
            said = await r.classifier.run(input, ctx)
        except OutputValidationError as e:  # e.g. a provider ignored the label constraint
            if r.default is None:
                raise
            return RouteDecision(label=r.default, chosen=f"invalid output: {e.reason}")
        label, confidence = read_label(said)
        unsure = r.min_confidence is not None and confidence is not None
        unsure = unsure and confidence < r.min_confidence  # type: ignore[operator]
        if label in r.branches and not unsure:
            return RouteDecision(label=label, confidence=confidence)
        if r.default is None:
            raise StepError(
                ctx.path,
                f"the classifier chose {label!r}, not one of {list(r.branches)}, and the "
                "route has no default branch",
            )
        return RouteDecision(label=r.default, confidence=confidence, chosen=label)


def route(
    name: str,
    branches: Mapping[str, Step[Any, Any]],
    *,
    classifier: Step[Any, Any] | None = None,
    instructions: str | Path | None = None,
    prompt: str | None = None,
    model: str | None = None,
    default: str | None = None,
    min_confidence: float | None = None,
    timeout_s: float | None = None,
) -> Route:
    """Run one of `branches`, chosen by `classifier` — or, given `instructions`, by an llm
    step whose output is constrained to the branch names."""
    if classifier is None:
        if instructions is None:
            raise DefinitionError(f"route {name!r} needs a classifier or instructions for one")
        labels = tuple(branches)
        classifier = llm(
            "classify",
            instructions=instructions,
            output=Literal[labels],
            prompt=prompt,
            model=model,
            max_tokens=32,
        )
    return Route(
        name,
        classifier,
        branches,
        default=default,
        min_confidence=min_confidence,
        timeout_s=timeout_s,
    )
