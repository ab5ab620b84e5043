"""Parallelization: sectioning (different steps on one input) and voting (one step n times).

`parallel` runs its sections concurrently, at most `max_concurrency` at once, and merges
their outputs: into a dict by default, into a pydantic model given its type, or through a
merge step or function. Its failure policy is declared per use: `fail_fast` cancels the
siblings and raises the first error; `collect` keeps going and puts a `Failed` in place of
each failed section's output.

`vote` runs one step `n` times (each run a variant with its own seed, sampled at
`temperature`), or once per model, and aggregates: `majority`, `at_least(k, value)` or
`best_of(scorer)`. Its output, a `VoteResult`, records the votes and the agreement.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel

from ..errors import DefinitionError, ProviderDownError, StepError
from ..steps.base import Step
from ..steps.context import RunContext
from ..steps.llm import LLMStep

T = TypeVar("T")
OnError = Literal["fail_fast", "collect"]


@dataclass(frozen=True, slots=True)
class Failed:
    """Stands in for the output of a section that failed (with `on_error="collect"`)."""

    error: str


Merge = type[BaseModel] | Step[Any, Any] | Callable[[dict[str, Any]], Any]


async def gather_bounded(
    jobs: Sequence[Callable[[], Awaitable[T]]],
    *,
    max_concurrency: int | None,
    on_error: OnError,
    path: str,
) -> list[T | Failed]:
    """Run `jobs` concurrently under a bound. fail_fast: the first error cancels the rest and
    is raised; collect: each error becomes a `Failed` in its place."""
    semaphore = asyncio.Semaphore(max_concurrency or len(jobs) or 1)
    results: list[T | Failed] = [Failed("not run")] * len(jobs)

    async def one(index: int) -> None:
        async with semaphore:
            try:
                results[index] = await jobs[index]()
            except Exception as e:
                if on_error == "fail_fast" or isinstance(e, ProviderDownError):
                    raise  # a provider down stops the run: no section can do without it
                results[index] = Failed(str(e))

    try:
        async with asyncio.TaskGroup() as group:
            for index in range(len(jobs)):
                group.create_task(one(index))
    except ExceptionGroup as group_error:
        first = group_error.exceptions[0]
        if isinstance(first, StepError | ProviderDownError):
            raise first from None
        raise StepError(path, f"{type(first).__name__}: {first}") from first
    return results


class Parallel(Step[Any, Any]):
    """Different steps on the same input, concurrently, merged."""

    kind = "parallel"

    def __init__(
        self,
        name: str,
        sections: Mapping[str, Step[Any, Any]],
        *,
        merge: Merge | None = None,
        on_error: OnError = "fail_fast",
        max_concurrency: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        if not sections:
            raise DefinitionError(f"parallel {name!r} needs at least one section")
        self.sections = dict(sections)
        self.merge = merge
        self.on_error: OnError = on_error
        self.max_concurrency = max_concurrency

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        merge = [("merge", self.merge)] if isinstance(self.merge, Step) else []
        return [*self.sections.items(), *merge]

    async def run(self, input: Any, ctx: RunContext) -> Any:
        keys = list(self.sections)
        jobs = [(lambda key=key: self.sections[key].invoke(input, ctx, key)) for key in keys]
        outputs = dict(
            zip(
                keys,
                await gather_bounded(
                    jobs,
                    max_concurrency=self.max_concurrency,
                    on_error=self.on_error,
                    path=ctx.path,
                ),
                strict=True,
            )
        )
        merge = self.merge
        if merge is None:
            return outputs
        if isinstance(merge, Step):
            return await merge.invoke(outputs, ctx, "merge")
        if isinstance(merge, type) and issubclass(merge, BaseModel):
            return merge.model_validate(outputs)
        return cast(Callable[[dict[str, Any]], Any], merge)(outputs)


def parallel(
    name: str,
    sections: Mapping[str, Step[Any, Any]] | Sequence[Step[Any, Any]],
    *,
    merge: Merge | None = None,
    on_error: OnError = "fail_fast",
    max_concurrency: int | None = None,
    timeout_s: float | None = None,
) -> Parallel:
    """Run `sections` (a mapping, or a list keyed by step names) concurrently and merge."""
    if not isinstance(sections, Mapping):
        names = [s.name for s in sections]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise DefinitionError(
                f"parallel {name!r}: section names must be unique, repeated: {repeated} "
                "(pass a mapping {key: step} to name them)"
            )
        sections = {s.name: s for s in sections}
    return Parallel(
        name,
        sections,
        merge=merge,
        on_error=on_error,
        max_concurrency=max_concurrency,
        timeout_s=timeout_s,
    )


# -- voting ------------------------------------------------------------------------------------


class VoteResult(BaseModel):
    """The outcome of a vote."""

    value: Any
    """The winning answer (for `at_least`: whether the threshold was met)."""
    votes: list[Any]
    """The answers of the runs that succeeded, in order (failed runs are left out)."""
    agreement: float
    """majority: the share of votes equal to the winner; at_least: the share equal to the
    flagged value; best_of: the best score."""


Aggregate = Callable[[list[Any], RunContext], Awaitable[VoteResult]]


def majority(key: Callable[[Any], Any] = lambda v: v) -> Aggregate:
    """The most common answer (by `key`); ties go to the answer seen first."""

    async def aggregate(votes: list[Any], ctx: RunContext) -> VoteResult:
        counts = Counter(_hashable(key(v)) for v in votes)
        winner_key, count = counts.most_common(1)[0]
        winner = next(v for v in votes if _hashable(key(v)) == winner_key)
        return VoteResult(value=winner, votes=votes, agreement=count / len(votes))

    return aggregate


def at_least(k: int, value: Any, key: Callable[[Any], Any] = lambda v: v) -> Aggregate:
    """True when at least `k` answers equal `value` ("flag when 2 of 3 say unsafe")."""

    async def aggregate(votes: list[Any], ctx: RunContext) -> VoteResult:
        hits = sum(key(v) == value for v in votes)
        return VoteResult(value=hits >= k, votes=votes, agreement=hits / len(votes))

    return aggregate


def best_of(scorer: Step[Any, Any]) -> Aggregate:
    """The answer the `scorer` step scores highest (a number, or an object with `score`)."""

    async def aggregate(votes: list[Any], ctx: RunContext) -> VoteResult:
        scores = []
        for index, vote in enumerate(votes, start=1):
            scored = await scorer.invoke(vote, ctx, f"score[{index}]")
            scores.append(float(getattr(scored, "score", scored)))
        best = max(range(len(votes)), key=scores.__getitem__)
        return VoteResult(value=votes[best], votes=votes, agreement=scores[best])

    return aggregate


class Vote(Step[Any, VoteResult]):
    """One step run several times (or on several models), aggregated."""

    kind = "vote"

    def __init__(
        self,
        name: str,
        step: Step[Any, Any],
        *,
        n: int = 3,
        models: Sequence[str] | None = None,
        aggregate: Aggregate | None = None,
        temperature: float = 0.7,
        max_concurrency: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        runs = len(models) if models else n
        if runs < 1:
            raise DefinitionError(f"vote {name!r} needs at least one run")
        self.step = step
        self.aggregate = aggregate or majority()
        self.max_concurrency = max_concurrency
        self.variants: list[Step[Any, Any]] = []
        for index in range(runs):
            if isinstance(step, LLMStep):
                model = models[index] if models else None
                # Identical greedy runs would agree by construction: sample, with a seed each.
                self.variants.append(step.variant(model=model, temperature=temperature, seed=index))
            elif models:
                raise DefinitionError(f"vote {name!r}: models= needs an llm step")
            else:
                self.variants.append(step)

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [(f"{self.step.name}[1..{len(self.variants)}]", self.step)]

    async def run(self, input: Any, ctx: RunContext) -> VoteResult:
        jobs = [
            (lambda v=v, i=i: v.invoke(input, ctx, f"{self.step.name}[{i}]"))
            for i, v in enumerate(self.variants, start=1)
        ]
        results = await gather_bounded(
            jobs, max_concurrency=self.max_concurrency, on_error="collect", path=ctx.path
        )
        valid = [r for r in results if not isinstance(r, Failed)]
        if not valid:
            errors = "; ".join(r.error for r in results if isinstance(r, Failed))
            raise StepError(ctx.path, f"every run failed: {errors}")
        return await self.aggregate(valid, ctx)


vote = Vote
"""`vote(name, step, n=3 | models=[...], aggregate=majority())`: run and aggregate."""


def _hashable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, dict | list | set):
        return repr(value)
    return value
