"""Evaluator-optimizer: generate, evaluate with feedback, regenerate — until the evaluator
passes a draft or the round cap is reached.

The generator receives a `Draft` (the task's input, and from round 2 the previous output and
the evaluator's feedback); the evaluator receives a `Candidate` (the input and an output) and
returns an `Evaluation` (passed, score, feedback). Every round is recorded
(`refine/generate[2]`, `refine/evaluate[2]`); the result is the best-scoring output, with the
rounds and why the loop stopped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import DefinitionError
from ..steps.base import Step
from ..steps.context import RunContext


class Draft(BaseModel):
    """What the generator receives."""

    input: Any
    """The task's input."""
    round: int
    """1 for the first draft."""
    previous: Any = None
    """The previous round's output (None in round 1)."""
    feedback: str | None = None
    """The evaluator's feedback on `previous`."""


class Candidate(BaseModel):
    """What the evaluator receives."""

    input: Any
    output: Any
    round: int


class Evaluation(BaseModel):
    """The evaluator's verdict on one output."""

    passed: bool
    """Good enough to stop."""
    score: float = Field(ge=0, le=10)
    """How good, 0 to 10."""
    feedback: str = Field(max_length=1000)
    """What to change, for the next round (required: without it the next round has nothing
    to act on, and a greedy generator repeats itself)."""


class Round(BaseModel):
    output: Any
    evaluation: Evaluation


class RefineResult(BaseModel):
    """The best output and how the loop went."""

    output: Any
    """The best-scoring output (the passing one, when one passed)."""
    score: float
    passed: bool
    stopped: Literal["passed", "max_rounds"]
    """Why the loop ended."""
    rounds: list[Round]
    """Every round, in order."""


class Refine(Step[Any, RefineResult]):
    """Generate and evaluate in rounds, bounded by `max_rounds`."""

    kind = "refine"

    def __init__(
        self,
        name: str,
        *,
        generator: Step[Draft, Any],
        evaluator: Step[Candidate, Evaluation],
        max_rounds: int = 3,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        if max_rounds < 1:
            raise DefinitionError(f"refine {name!r}: max_rounds must be at least 1")
        self.generator = generator
        self.evaluator = evaluator
        self.max_rounds = max_rounds

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [("generate", self.generator), ("evaluate", self.evaluator)]

    async def run(self, input: Any, ctx: RunContext) -> RefineResult:
        rounds: list[Round] = []
        previous: Any = None
        feedback: str | None = None
        for n in range(1, self.max_rounds + 1):
            draft = Draft(input=input, round=n, previous=previous, feedback=feedback)
            output = await self.generator.invoke(draft, ctx, f"generate[{n}]")
            verdict = await self.evaluator.invoke(
                Candidate(input=input, output=output, round=n), ctx, f"evaluate[{n}]"
            )
            evaluation = Evaluation.model_validate(verdict, from_attributes=True)
            rounds.append(Round(output=output, evaluation=evaluation))
            if evaluation.passed:
                return RefineResult(
                    output=output, score=evaluation.score, passed=True, stopped="passed",
                    rounds=rounds,
                )  # fmt: skip
            previous, feedback = output, evaluation.feedback
        best = max(rounds, key=lambda r: r.evaluation.score)
        return RefineResult(
            output=best.output,
            score=best.evaluation.score,
            passed=False,
            stopped="max_rounds",
            rounds=rounds,
        )


refine = Refine
"""`refine(name, generator=..., evaluator=..., max_rounds=3)`: loop until a pass or the cap."""
