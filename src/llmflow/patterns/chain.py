"""Prompt chaining: steps in sequence, with gates between them and state built up as it goes.

- `chain(name, *steps)` runs each step on the previous one's output.
- `gate(name, check)` is a code check between steps. `check(value)` returns True or None to go
  on, False or `Stop(reason)` to end the chain (its output is the value so far, or the Stop's
  `output`), or `Divert(step, reason)` to finish with another step instead.
- `assign(field, step)` runs `step` on the current value and stores its output as `field` of
  that value (a pydantic model or a dict), so later steps see every earlier result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..errors import DefinitionError, StepError
from ..steps.base import Step
from ..steps.context import RunContext


@dataclass(frozen=True, slots=True)
class Stop:
    """A gate's decision to end the chain here."""

    reason: str
    """Why, for the record."""
    output: Any = None
    """The chain's output; None keeps the value so far."""


@dataclass(frozen=True, slots=True)
class Divert:
    """A gate's decision to finish with `step` instead of the rest of the chain."""

    step: Step[Any, Any]
    """The step that takes the current value and gives the chain's output."""
    reason: str = ""
    """Why, for the record."""


GateCheck = Callable[[Any], "bool | Stop | Divert | None"]


class Gate(Step[Any, "Stop | Divert | None"]):
    """A code check between chain steps. Its recorded output is its decision."""

    kind = "gate"

    def __init__(self, name: str, check: GateCheck) -> None:
        super().__init__(name)
        self.check = check

    async def run(self, input: Any, ctx: RunContext) -> Stop | Divert | None:
        decision = self.check(input)
        if decision is True or decision is None:
            return None
        if decision is False:
            return Stop(f"gate {self.name!r} did not pass")
        if isinstance(decision, Stop | Divert):
            return decision
        raise StepError(
            ctx.path,
            f"a gate check must return True, False, None, Stop or Divert, not {decision!r}",
        )


class Chain(Step[Any, Any]):
    """Steps in sequence, each on the previous output; gates may stop or divert."""

    kind = "chain"

    def __init__(self, name: str, steps: Sequence[Step[Any, Any]]) -> None:
        super().__init__(name)
        if not steps:
            raise DefinitionError(f"chain {name!r} needs at least one step")
        names = [s.name for s in steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DefinitionError(
                f"chain {name!r}: step names must be unique, repeated: {duplicates}"
            )
        self.steps = list(steps)

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [(step.name, step) for step in self.steps]

    async def run(self, input: Any, ctx: RunContext) -> Any:
        value = input
        for step in self.steps:
            if not isinstance(step, Gate):
                value = await step(value, ctx)
                continue
            decision = await step(value, ctx)
            if isinstance(decision, Stop):
                return value if decision.output is None else decision.output
            if isinstance(decision, Divert):
                return await decision.step(value, ctx)
        return value


class Assign(Step[Any, Any]):
    """Run `step` on the current value and store its output in the value's `field`."""

    kind = "assign"

    def __init__(
        self, field: str, step: Step[Any, Any], select: Callable[[Any], Any] | None = None
    ) -> None:
        super().__init__(step.name)
        self.kind = step.kind
        self.field = field
        self.step = step
        self.select = select

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return self.step.children()

    async def run(self, input: Any, ctx: RunContext) -> Any:
        # The inner step runs under this step's own path, so it is recorded once, by name.
        inner = input if self.select is None else self.select(input)
        output = await self.step.run(inner, ctx)
        if isinstance(input, BaseModel):
            return input.model_copy(update={self.field: output})
        if isinstance(input, dict):
            return {**input, self.field: output}
        raise StepError(
            ctx.path, f"assign needs a pydantic model or dict value, got {type(input).__name__}"
        )


def chain(name: str, *steps: Step[Any, Any]) -> Chain:
    """Run `steps` in sequence; see the module docstring for gates."""
    return Chain(name, steps)


def gate(name: str, check: GateCheck) -> Gate:
    """A check between chain steps: True/None goes on, False/`Stop` ends, `Divert` diverts."""
    return Gate(name, check)


def assign(
    field: str, step: Step[Any, Any], *, select: Callable[[Any], Any] | None = None
) -> Assign:
    """Run `step` (on `select(value)`, default the whole value) and store it as `field`."""
    return Assign(field, step, select)
