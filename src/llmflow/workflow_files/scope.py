"""How the steps of a workflow file see their data: a scope of `input` and `steps`.

A file's chain keeps its state in a flat dict (`{"input": item, "<id>": output, ...}`) built
with `assign`, so each step's output is stored under its id. Each step receives a `Scope`:
the variables its expressions and templates see — `input`, `steps` (the earlier outputs by
id), and inside patterns the pattern's own (`round`, `feedback`, `output`, `task`, ...).

The adapters here are thin: they turn what a pattern passes (a `Draft`, a `Candidate`, a
`WorkItem`, ...) into a scope, and render prompts in the sandbox. The patterns themselves are
the library's own (`chain`, `assign`, `route`, `refine`, ...).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

import jinja2
from agents import Agent
from pydantic import BaseModel

from ..errors import StepError
from ..patterns.chain import Assign, Chain
from ..patterns.orchestrate import Synthesis, WorkItem
from ..patterns.parallel import Parallel
from ..patterns.refine import Candidate, Draft
from ..steps.agent import AgentStep
from ..steps.base import Step
from ..steps.context import RunContext
from ..steps.llm import LLMStep
from ..steps.principal import Principal, acting_for
from ..steps.prompt import render_input
from ..steps.untrusted import UNTRUSTED_RULE
from .expressions import lenient

Expression = Callable[..., Any]


class Scope(dict[str, Any]):
    """The variables a step sees: always `input` and `steps`, plus a pattern's own. `raw` is
    what the pattern passed (a Draft, a Candidate, ...), which code steps receive."""

    raw: Any = None

    @classmethod
    def make(cls, input: Any, steps: Mapping[str, Any], raw: Any = None, **extra: Any) -> Scope:
        scope = cls(input=input, steps=dict(steps), **extra)
        scope.raw = raw
        return scope

    @property
    def input(self) -> Any:
        return self["input"]

    def natural(self) -> Any:
        """What a code step or a default prompt takes: the pattern's object, else the item."""
        return self.raw if self.raw is not None else self["input"]


_outer: ContextVar[Scope | None] = ContextVar("llmflow_spec_scope", default=None)
"""The scope of the chain step running in this task, for sub-steps handed something without
one (a parallel's merged outputs, a vote being scored)."""


def scope_of(value: Any) -> Scope:
    """The scope for whatever a pattern passed to a step."""
    if isinstance(value, Scope):
        return value
    outer = _outer.get() or Scope.make(None, {})
    if isinstance(value, Draft | Candidate | WorkItem | Synthesis):
        base = value.input if isinstance(value.input, Scope) else outer
        fields = {k: getattr(value, k) for k in type(value).model_fields if k != "input"}
        natural = value.model_copy(update={"input": base["input"]})
        extra = {k: v for k, v in base.items() if k not in ("input", "steps")}
        return Scope.make(base["input"], base["steps"], natural, **{**extra, **fields})
    return Scope.make(outer["input"], outer["steps"], value, value=value)


def lenient_copy(template: jinja2.Template) -> jinja2.Template:
    """The same template, where an undefined variable renders empty."""
    source = getattr(template, "llmflow_source", None)
    return template if source is None else lenient.from_string(source)


def template_text(template: jinja2.Template | None, scope: Scope) -> str:
    """A prompt: the template rendered over the scope, or the natural value as text."""
    if template is None:
        return render_input(_dump(scope.natural()))
    return template.render(dict(scope))


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _reason(e: jinja2.TemplateError) -> str:
    return e.message or type(e).__name__


class ScopedLLM(LLMStep[Any, Any]):
    """An llm step whose prompt is a sandboxed template over the scope; with `grounding`
    (the `grounded:` option), its answer passes that check before anything reads it."""

    template: jinja2.Template | None = None
    grounding: Callable[[Any, Scope, RunContext], Awaitable[Any]] | None = None

    async def run(self, input: Any, ctx: RunContext) -> Any:
        answer = await super().run(input, ctx)
        if self.grounding is None:
            return answer
        return await self.grounding(answer, scope_of(input), ctx)

    def render(self, input: Any) -> str:
        try:
            return template_text(self.template, scope_of(input))
        except jinja2.TemplateError as e:
            raise StepError(self.name, f"prompt template: {_reason(e)}") from e


_agent_scope: ContextVar[Scope | None] = ContextVar("llmflow_agent_scope", default=None)
"""The scope of the agent run in progress, for instructions that are templates."""
_chatting: ContextVar[bool] = ContextVar("llmflow_chatting", default=False)
"""Whether the agent runs in `llmflow chat`, where a template's variables may be missing."""


class ScopedAgent(AgentStep):
    """An agent step whose prompt and instructions are sandboxed templates over the scope."""

    template: jinja2.Template | None = None
    instructions_template: jinja2.Template | None = None

    def render(self, input: Any) -> Any:
        if isinstance(input, Conversation):  # `llmflow chat`: the turns so far
            value = input.last if input.input is None else input.input
            _agent_scope.set(Scope.make(value, {}))
            _chatting.set(True)
            return input.messages()
        scope = scope_of(input)
        _agent_scope.set(scope)
        try:
            return template_text(self.template, scope)
        except jinja2.TemplateError as e:
            raise StepError(self.name, f"prompt template: {_reason(e)}") from e

    def _build(self, node: Any) -> Agent[Any]:
        sdk_agent = super()._build(node)
        template = self.instructions_template
        if template is not None:
            # In a chat, a variable the user gave no value renders empty rather than failing.
            lenient = lenient_copy(template)
            rule = f"\n\n{UNTRUSTED_RULE}" if any(t.untrusted for t in self.tools) else ""

            def instructions(_context: Any, _agent: Any) -> str:
                scope = _agent_scope.get() or Scope.make(None, {})
                try:
                    return (lenient if _chatting.get() else template).render(dict(scope)) + rule
                except jinja2.TemplateError as e:
                    raise StepError(self.name, f"instructions template: {_reason(e)}") from e

            sdk_agent.instructions = instructions
        return sdk_agent


class Conversation:
    """A chat so far: alternating user and assistant turns, the last one the user's."""

    def __init__(self, input: Any = None) -> None:
        self.turns: list[tuple[str, str]] = []
        self.input = input
        """What the agent's templates see as `input` (default: the user's last line)."""

    @property
    def last(self) -> str:
        return self.turns[-1][1] if self.turns else ""

    def messages(self) -> list[Any]:
        return [{"role": role, "content": text} for role, text in self.turns]


class ScopedCode(Step[Any, Any]):
    """A Python function on the value of an expression over the scope (default: the item,
    or the pattern's object inside refine, orchestrate, ...)."""

    kind = "code"

    def __init__(self, name: str, fn: Callable[..., Any], select: Expression | None) -> None:
        super().__init__(name)
        self.fn = fn
        self.select = select
        try:
            self._wants_ctx = len(inspect.signature(fn).parameters) >= 2
        except (TypeError, ValueError):
            self._wants_ctx = False

    async def run(self, input: Any, ctx: RunContext) -> Any:
        scope = scope_of(input)
        value = scope.natural() if self.select is None else self.select(**scope)
        result = self.fn(value, ctx) if self._wants_ctx else self.fn(value)
        if inspect.isawaitable(result):
            return await result
        return result


class ToolCallStep(Step[Any, Any]):
    """One tool called directly with keyword arguments from expressions."""

    def __init__(
        self, name: str, fn: Callable[..., Any], args: dict[str, Expression], side_effect: bool
    ) -> None:
        super().__init__(name)
        self.kind = "action" if side_effect else "tool"
        self.fn = fn
        self.args = args

    async def run(self, input: Any, ctx: RunContext) -> Any:
        scope = scope_of(input)
        args = {name: evaluate(**scope) for name, evaluate in self.args.items()}

        async def call() -> Any:
            result = self.fn(**args)
            if inspect.isawaitable(result):
                return await result
            return result

        if self.kind != "action":
            with acting_for(ctx.principal):
                return await call()

        async def effect() -> Any:
            with acting_for(ctx.principal):
                return await call()

        # A side effect: exactly once per durable run (the run's `ctx.effects`).
        return await ctx.effects.run(effect, ctx)


class TextOf:
    """The text a rules or ml step classifies: a template over the scope, or the item."""

    def __init__(self, template: jinja2.Template | None) -> None:
        self.template = template

    def __call__(self, value: Any) -> str:
        return template_text(self.template, scope_of(value))


class MergedParallel(Step[Any, Any]):
    """A parallel step whose merge is a step: the merge sees the sections' outputs as
    `sections`, with the scope's `input` and `steps`."""

    kind = "parallel"

    def __init__(self, parallel: Parallel, merge: Step[Any, Any]) -> None:
        super().__init__(parallel.name, timeout_s=parallel.timeout_s)
        self.parallel = parallel
        self.merge = merge

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [*self.parallel.children(), ("merge", self.merge)]

    async def run(self, input: Any, ctx: RunContext) -> Any:
        scope = scope_of(input)
        sections = await self.parallel.run(scope, ctx)
        merged = Scope.make(scope["input"], scope["steps"], sections, sections=sections)
        return await self.merge.invoke(merged, ctx, "merge")


Result = Callable[[dict[str, Any]], Any]
VARIABLES = "__variables__"
"""Where a nested chain's state keeps the pattern variables it was given (no step id starts
with an underscore, so it never clashes with an output)."""


class SpecChain(Step[Any, Any]):
    """A chain of a workflow file: it builds the state from the scope it receives (or from
    the item, at the top), runs the library's `chain` of `assign`s and gates over it, and
    computes its result from the final state."""

    kind = "chain"

    def __init__(
        self,
        name: str,
        chain: Chain,
        *,
        own: list[str],
        result: Result | None,
        top: Callable[[Any], Any] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.chain = chain
        self.own = own
        """The ids of this chain's own steps (a default result is the last that ran)."""
        self.result = result
        self.top = top
        """For the workflow's chain: turns an item into the input (e.g. parses an email)."""
        self.principal: Callable[[Any], Principal] | None = None
        """For the workflow's chain: the item's principal, from its input (`principal:`)."""

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        # The steps themselves, not the `assign`s storing their outputs: graphs show the same
        # thing, and `llmflow calibrate` finds a cascade by its id.
        return [
            (name, step.step if isinstance(step, Assign) else step)
            for name, step in self.chain.children()
        ]

    async def run(self, input: Any, ctx: RunContext) -> Any:
        if self.top is not None:
            state: dict[str, Any] = {"input": self.top(input)}
            if self.principal is not None:
                ctx = dataclasses.replace(ctx, principal=self.principal(state["input"]))
        else:  # nested: the enclosing steps' outputs, and a pattern's variables (`feedback`...)
            scope = scope_of(input)
            extra = {k: v for k, v in scope.items() if k not in ("input", "steps")}
            state = {**scope["steps"], "input": scope["input"], VARIABLES: extra}
        final = await self.chain.run(state, ctx)
        if not isinstance(final, dict):  # pragma: no cover - assign and gates keep a dict
            raise StepError(ctx.path, "the chain's state was lost")
        if self.result is not None:
            return self.result(final)
        ran = [key for key in self.own if key in final]
        return final[ran[-1]] if ran else None


def scope_from_state(state: dict[str, Any]) -> Scope:
    """The scope a chain step sees: the item and every output so far. Also made the scope of
    sub-steps handed something else (see `_outer`)."""
    steps = {k: v for k, v in state.items() if k not in ("input", VARIABLES)}
    scope = Scope.make(state["input"], steps, **state.get(VARIABLES, {}))
    _outer.set(scope)
    return scope
