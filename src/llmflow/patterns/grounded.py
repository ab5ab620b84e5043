"""The grounding check as a step: a gate's test, a refine loop's evaluator, a tier's condition.

`grounding(text, source)` is the verdict of `steps.grounding.ungrounded` as an `Evaluation`
(so a refine loop can use it as its evaluator, its feedback naming what to remove) with the
refused values listed in `ungrounded`. `GroundingCheck` runs it as a step over whatever it is
handed, so the verdict is recorded like any step's output. Nothing here calls a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from ..steps.base import Step
from ..steps.context import RunContext
from ..steps.grounding import ungrounded
from .refine import Evaluation


class Grounding(Evaluation):
    """A grounding check's verdict: passed when the text states nothing the source does not."""

    ungrounded: list[str] = Field(default_factory=list)
    """The numbers, amounts, dates, ids, email addresses, URLs and names the text states and
    the source does not, as the text writes them."""


def text_of(value: Any, fields: Sequence[str] | None = None) -> str:
    """The text of a value to check or to check against: a string as it is; an object's (or
    a mapping's, or a list's) string and number values, one per line (only `fields` of an
    object, when given); None as empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        chosen = value if fields is None else {k: value.get(k) for k in fields}
        return "\n".join(text_of(v) for v in chosen.values() if v is not None)
    if isinstance(value, list | tuple | set | frozenset):
        return "\n".join(text_of(v) for v in value if v is not None)
    if isinstance(value, bool):
        return ""
    return str(value)


def grounding(
    text: str, source: str, *, allowed: Iterable[str] = (), names: bool = True
) -> Grounding:
    """The verdict on `text` against `source` (see `steps.grounding.ungrounded`)."""
    values = ungrounded(text, source, allowed=allowed, names=names)
    if not values:
        return Grounding(passed=True, score=10, feedback="Every fact is stated in the source.")
    listed = ", ".join(values)
    feedback = f"The source does not state {listed}: remove them or use the source's own values."
    return Grounding(
        passed=False,
        score=round(10 / (1 + len(values)), 2),
        feedback=feedback[:1000],
        ungrounded=values,
    )


class GroundingCheck(Step[Any, Grounding]):
    """Check the text `text(input)` against `source(input)`; the output is the verdict."""

    kind = "check"

    def __init__(
        self,
        name: str,
        *,
        text: Callable[[Any], Any],
        source: Callable[[Any], Any],
        fields: Sequence[str] | None = None,
        allowed: Iterable[str] = (),
        names: bool = True,
    ) -> None:
        super().__init__(name)
        self.text = text
        self.source = source
        self.fields = list(fields) if fields is not None else None
        self.allowed = list(allowed)
        self.names = names

    async def run(self, input: Any, ctx: RunContext) -> Grounding:
        return grounding(
            text_of(self.text(input), self.fields),
            text_of(self.source(input)),
            allowed=self.allowed,
            names=self.names,
        )


def grounding_check(
    name: str,
    *,
    text: Callable[[Any], Any] | None = None,
    source: Callable[[Any], Any],
    fields: Sequence[str] | None = None,
    allowed: Iterable[str] = (),
    names: bool = True,
) -> GroundingCheck:
    """A grounding check step. As a refine evaluator, `text` defaults to the candidate's
    output: `refine(..., evaluator=grounding_check("grounded", source=lambda c: c.input))`."""
    return GroundingCheck(
        name,
        text=text or (lambda candidate: getattr(candidate, "output", candidate)),
        source=source,
        fields=fields,
        allowed=allowed,
        names=names,
    )
