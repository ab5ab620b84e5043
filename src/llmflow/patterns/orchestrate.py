"""Orchestrator-workers: a planner splits the task at run time, workers do the parts, a
synthesiser merges them.

The planner returns a typed list of subtasks (at most `max_subtasks`: the schema says so, and
a longer plan fails the step rather than run unbounded); each subtask goes to a worker (any
step: an llm step, an agent, a refine loop...) with at most `max_concurrency` in flight; the
synthesiser gets the original input and every subtask's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import DefinitionError, StepError
from ..steps.base import Step
from ..steps.context import RunContext
from ..steps.llm import llm
from .parallel import Failed, OnError, gather_bounded


class Subtask(BaseModel):
    """One part of the work, as the planner describes it."""

    title: str = Field(max_length=120)
    """A short name for the part."""
    instructions: str = Field(max_length=600)
    """What the worker should do."""
    worker: str | None = None
    """Which worker should do it, when there are several."""


class Plan(BaseModel):
    """The planner's output."""

    subtasks: list[Subtask]
    """The parts, in order (at most the orchestrate step's `max_subtasks`)."""


class WorkItem(BaseModel):
    """What a worker receives: its subtask and the whole task's input."""

    task: Subtask
    """The part this worker does."""
    input: Any
    """The orchestrate step's own input, for context."""


class WorkResult(BaseModel):
    """A subtask and what its worker produced (or why it failed)."""

    task: Subtask
    """The part."""
    output: Any = None
    """What the worker produced; None when it failed."""
    error: str | None = None
    """Why the worker failed, when it did."""


class Synthesis(BaseModel):
    """What the synthesiser receives."""

    input: Any
    """The orchestrate step's input."""
    results: list[WorkResult]
    """Every part's result, in plan order (failed ones carry their error)."""


class Orchestrate(Step[Any, Any]):
    """Plan at run time, fan out to workers under a bound, synthesise."""

    kind = "orchestrate"

    def __init__(
        self,
        name: str,
        *,
        planner: Step[Any, Any],
        workers: Step[Any, Any] | Mapping[str, Step[Any, Any]],
        synthesiser: Step[Synthesis, Any],
        max_subtasks: int = 8,
        max_concurrency: int = 4,
        on_error: OnError = "collect",
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.planner = planner
        self.workers = dict(workers) if isinstance(workers, Mapping) else {"worker": workers}
        self.synthesiser = synthesiser
        self.max_subtasks = max_subtasks
        self.max_concurrency = max_concurrency
        self.on_error: OnError = on_error

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [("plan", self.planner), *self.workers.items(), ("synthesise", self.synthesiser)]

    async def run(self, input: Any, ctx: RunContext) -> Any:
        plan = await self.planner.invoke(input, ctx, "plan")
        subtasks: list[Subtask] = list(getattr(plan, "subtasks", plan))
        if len(subtasks) > self.max_subtasks:
            raise StepError(
                f"{ctx.path}/plan",
                f"the planner returned {len(subtasks)} subtasks, more than max_subtasks="
                f"{self.max_subtasks}: raise max_subtasks or ask the planner for fewer",
            )
        names = list(self.workers)

        def worker_for(task: Subtask) -> str:
            return task.worker if task.worker in self.workers else names[0]

        jobs = [
            (
                lambda i=i, task=task: self.workers[worker_for(task)].invoke(
                    WorkItem(task=task, input=input), ctx, f"{worker_for(task)}[{i}]"
                )
            )
            for i, task in enumerate(subtasks, start=1)
        ]
        outputs = await gather_bounded(
            jobs, max_concurrency=self.max_concurrency, on_error=self.on_error, path=ctx.path
        )
        results = [
            WorkResult(task=task, error=out.error)
            if isinstance(out, Failed)
            else WorkResult(task=task, output=out)
            for task, out in zip(subtasks, outputs, strict=True)
        ]
        return await self.synthesiser.invoke(
            Synthesis(input=input, results=results), ctx, "synthesise"
        )


def orchestrate(
    name: str,
    *,
    workers: Step[Any, Any] | Mapping[str, Step[Any, Any]],
    synthesiser: Step[Synthesis, Any],
    planner: Step[Any, Any] | None = None,
    instructions: str | Path | None = None,
    prompt: str | None = None,
    model: str | None = None,
    max_tokens: int = 1024,
    max_subtasks: int = 8,
    max_concurrency: int = 4,
    on_error: OnError = "collect",
    timeout_s: float | None = None,
) -> Orchestrate:
    """Plan with `planner` (or an llm planner given its `instructions`, `prompt` and
    `max_tokens`), run each subtask on
    a worker, and merge with `synthesiser`. A failed subtask is passed on with its error
    (`on_error="collect"`) or fails the step (`"fail_fast"`)."""
    if planner is None:
        if instructions is None:
            raise DefinitionError(f"orchestrate {name!r} needs a planner or instructions for one")

        class BoundedPlan(Plan):
            subtasks: list[Subtask] = Field(min_length=1, max_length=max_subtasks)

        planner = llm(
            "plan",
            instructions=instructions,
            output=BoundedPlan,
            prompt=prompt,
            model=model,
            max_tokens=max_tokens,
        )
    return Orchestrate(
        name,
        planner=planner,
        workers=workers,
        synthesiser=synthesiser,
        max_subtasks=max_subtasks,
        max_concurrency=max_concurrency,
        on_error=on_error,
        timeout_s=timeout_s,
    )
