"""The Step: a name, a typed input and output, and an async run.

Every kind of step (code, llm; ml and agent later) and every pattern (chain; route, parallel
and the others later) is a `Step`, so they nest freely. Calling a step runs it under a child
context whose path ends with the step's name, and reports it to the run's hooks.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Self, cast

from typing_extensions import TypeVar

from ..errors import BudgetExceededError, ConfigError, DefinitionError, ProviderDownError, StepError
from .context import RunContext

# Defaults (PEP 696): a step built without type information is a Step[Any, Any].
In = TypeVar("In", default=Any)
Out = TypeVar("Out", default=Any)


class Step(abc.ABC, Generic[In, Out]):
    """A unit of work in a workflow. Subclass it and implement `run`."""

    kind: str = "step"
    """What sort of step this is: code, llm, ml, agent, chain, ..."""

    timeout_s: float | None = None
    """Seconds the step may take (its sub-steps included); None: no limit of its own."""

    def __init__(self, name: str, *, timeout_s: float | None = None) -> None:
        if not name or "/" in name:
            raise DefinitionError(f"a step name must be non-empty and contain no '/': {name!r}")
        self.name = name
        if timeout_s is not None:
            self.timeout_s = timeout_s

    @abc.abstractmethod
    async def run(self, input: In, ctx: RunContext) -> Out:
        """Do the work. `ctx.path` is this step's own path."""

    async def __call__(self, input: In, ctx: RunContext) -> Out:
        """Run under a child context named after the step, and report it to the hooks."""
        return await self.invoke(input, ctx, self.name)

    async def invoke(self, input: In, ctx: RunContext, name: str) -> Out:
        """Run as the child `name` of `ctx` (patterns name branches and rounds this way,
        e.g. `refine/generate[2]`), under the step's timeout, and report it to the hooks."""
        ctx = ctx.child(name)
        started_at = time.time()
        t0 = time.perf_counter()
        output: Any = None
        error: BaseException | None = None
        try:
            if self.timeout_s is None:
                result = await self.run(input, ctx)
            else:
                async with asyncio.timeout(self.timeout_s):
                    result = await self.run(input, ctx)
            output = result
            return result
        except (
            StepError,
            ConfigError,
            BudgetExceededError,
            ProviderDownError,
        ) as e:  # named already, or not the step's
            error = e
            raise
        except TimeoutError as e:
            reason = f"timed out after {self.timeout_s:g}s" if self.timeout_s else "TimeoutError"
            error = StepError(ctx.path, reason)
            raise error from e
        except Exception as e:  # a model call or user code failed: name the step it failed in
            error = StepError(ctx.path, f"{type(e).__name__}: {e}")
            raise error from e
        except BaseException as e:  # cancelled or interrupted: recorded, then re-raised
            error = e
            raise
        finally:
            latency = time.perf_counter() - t0
            for hook in ctx.hooks:
                hook.on_step_end(
                    ctx,
                    step=self,
                    input=input,
                    output=output,
                    error=error,
                    started_at=started_at,
                    latency_s=latency,
                )

    def with_timeout(self, seconds: float) -> Self:
        """Set the step's timeout; returns the step."""
        self.timeout_s = seconds
        return self

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        """The sub-steps, each with its role (for graphs); leaf steps have none."""
        return []

    def asks_approval(self, run_id: str | None) -> bool:
        """Whether this step itself (not its sub-steps) may wait for a person's approval in
        run `run_id`. A durable run runs each item of such a workflow as a DBOS workflow, the
        only place a run can wait for a person; the others' items run without (`durable.batch`).
        """
        return False

    def may_ask_approval(self, run_id: str | None) -> bool:
        """Whether this step or any of its sub-steps may wait for a person's approval."""
        return self.asks_approval(run_id) or any(
            child.may_ask_approval(run_id) for _, child in self.children()
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class CodeStep(Step[In, Out]):
    """A plain Python function as a step (Software 1.0): parsing, rules, actions.

    The function takes the input, or the input and the `RunContext` when it declares a
    second parameter; it may be sync or async.
    """

    kind = "code"

    def __init__(
        self,
        name: str,
        fn: Callable[..., Out | Awaitable[Out]],
        *,
        asks_approval: bool | Callable[[str | None], bool] = False,
    ) -> None:
        super().__init__(name)
        self.fn = fn
        self._asks_approval = asks_approval
        """Whether `fn` may wait for an approval (`ctx.effects.approval`), or a function of
        the run id that says whether it may in that run."""
        try:
            self._wants_ctx = len(inspect.signature(fn).parameters) >= 2
        except (TypeError, ValueError):  # builtins such as str have no signature
            self._wants_ctx = False

    def asks_approval(self, run_id: str | None) -> bool:
        rule = self._asks_approval
        return rule(run_id) if callable(rule) else rule

    async def run(self, input: In, ctx: RunContext) -> Out:
        result = self.fn(input, ctx) if self._wants_ctx else self.fn(input)
        if inspect.isawaitable(result):  # async functions, and sync ones returning awaitables
            return await cast(Awaitable[Out], result)
        return result


def code(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Make a code step from a function: `code(parse)` or `@code(name="parse")`."""

    def wrap(f: Callable[..., Any]) -> CodeStep[Any, Any]:
        return CodeStep(name or f.__name__, f)

    return wrap(fn) if fn is not None else wrap
