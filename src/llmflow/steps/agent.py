"""The agent step: an LLM-driven loop on the OpenAI Agents SDK's Runner.

The Runner runs on `GatewayModel`, so every model call in the loop goes through the gateway
(limits, retries, metering, records), on any provider, the embedded model included. Every
tool call runs as a recorded step (`agent/lookup[1]`: arguments, result, error, latency);
tools declared with `side_effect=True` are recorded with kind `action` and, in a durable run,
run exactly once: each call is a durable effect keyed by the run, the item and its path
(`support/refund[2]`), so a resumed run answers a call that completed from its checkpoint and
does not call the tool again. Tools declared `needs_approval=True` pause the durable run
until someone runs `llmflow approve` or `llmflow reject` (see `_ToolCall`). Other agent steps
can be handoffs or tools (`other.as_tool()`). `max_turns` bounds the loop; on the embedded model
tools are also withheld after a few rounds, so an agent always ends. Tracing to OpenAI is off:
llmflow sends no telemetry.

A step builds its SDK agent (with its tools and handoffs) once, on its first run, and reuses
it: building one costs more than a model call. What differs between runs (the gateway, the
model name, where model calls and tool calls are recorded, the tool-call numbering) is looked
up at call time in the run in progress, which `AgentStep.run` puts in a context variable.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pydantic_core
from agents import (
    Agent,
    FunctionTool,
    MaxTurnsExceeded,
    Model,
    ModelResponse,
    ModelSettings,
    RunConfig,
    Runner,
    UserError,
    function_tool,
)
from agents.tool_context import ToolContext

from ..errors import ConfigError, StepError
from ..models.agents_adapter import GatewayModel
from .base import Step
from .context import RunContext
from .effects import Decision
from .principal import (
    ActionRecord,
    ApprovalRule,
    Check,
    Principal,
    ToolRefusedError,
    acting_for,
    permission_problem,
)
from .prompt import PromptTemplate, read_instructions
from .untrusted import UNTRUSTED_RULE, mark_untrusted

NO_TRACING = RunConfig(tracing_disabled=True)

Invoke = Callable[[str, ToolContext[Any], RunContext], Awaitable[Any]]


class Tool:
    """A tool an agent may call: a Python function with typed arguments, or another agent."""

    def __init__(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any],
        invoke: Invoke,
        *,
        side_effect: bool = False,
        needs_approval: bool | ApprovalRule = False,
        strict: bool = True,
        requires: Sequence[str] = (),
        check: Check | None = None,
        untrusted: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self.parameters = parameters
        """JSON schema of the arguments."""
        self.invoke = invoke
        self.side_effect = side_effect
        """Changes the world (sends, pays, writes): recorded as an `action`, and run exactly
        once per call in a durable run."""
        self.needs_approval = needs_approval
        """Each call waits for a person's approval (durable runs only); a rejected call is
        not made, and the model is told so, with the reviewer's comment. A function
        `(principal, arguments) -> bool` asks for approval of the calls it returns True for
        (refunds above an amount)."""
        self.strict = strict
        self.requires = frozenset(requires)
        """Permissions the run's principal must hold for any call (`Principal.permissions`)."""
        self.check = check
        """`(principal, arguments)`: True allows the call; anything else refuses it (a
        string says why). Calls outside it are refused before the tool runs, and recorded."""
        self.untrusted = untrusted
        """Its results come from outside (the web, a mailbox): the model reads them marked
        as data (`mark_untrusted`)."""


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    needs_approval: bool | ApprovalRule = False,
    requires: Sequence[str] = (),
    check: Check | None = None,
    untrusted: bool = False,
) -> Any:
    """Make a tool from a function (sync or async, typed arguments, docstring as description):
    `tool(lookup)`, `@tool(side_effect=True)` for one that changes something (exactly once
    per call in a durable run), `needs_approval=True` for one a person must approve first
    (or a function of the principal and arguments saying which calls), `requires=[...]` and
    `check=fn` for what the run's principal must be allowed (see `steps.principal`),
    `untrusted=True` for one whose results the model must read as data."""

    def wrap(f: Callable[..., Any]) -> Tool:
        # The SDK derives the argument schema and validates calls; errors are left to raise
        # so that they are recorded, then reported to the model by `_ToolCall`.
        base = function_tool(
            f, name_override=name, description_override=description, failure_error_function=None
        )

        async def invoke(args: str, tool_ctx: ToolContext[Any], ctx: RunContext) -> Any:
            return await base.on_invoke_tool(tool_ctx, args)

        return Tool(
            base.name,
            base.description,
            base.params_json_schema,
            invoke,
            side_effect=side_effect,
            needs_approval=needs_approval,
            strict=base.strict_json_schema,
            requires=requires,
            check=check,
            untrusted=untrusted,
        )

    return wrap(fn) if fn is not None else wrap


class _ToolCall(Step[str, Any]):
    """One call of a tool, as a recorded step (`ctx.path` is `agent/tool[n]`).

    A side-effect tool runs as an effect of the run (`ctx.effects`): in a durable run its
    result is checkpointed, and `current_idempotency_key()` inside it is
    `<run id>/<item>/<agent>/<tool>[n]`, the same when a call cut off by a crash runs again.
    """

    def __init__(self, tool: Tool, tool_ctx: ToolContext[Any]) -> None:
        super().__init__(tool.name)
        self.kind = "action" if tool.side_effect else "tool"
        self.tool = tool
        self.tool_ctx = tool_ctx

    async def run(self, input: str, ctx: RunContext) -> Any:
        t = self.tool
        arguments = _arguments(input)
        principal = ctx.principal
        given = arguments if isinstance(arguments, dict) else {}

        def record(status: Any, result: Any, approval: dict[str, Any] | None = None) -> None:
            ctx.actions.append(
                ActionRecord(t.name, ctx.path, arguments, status, t.side_effect, result, approval)
            )

        problem = permission_problem(t.name, t.requires, t.check, principal, given)
        if problem is not None:
            record("refused", problem)
            raise ToolRefusedError(
                ctx.path,
                f"Refused: {t.name} is not allowed here: {problem}. The tool did not run; tell "
                "the user you cannot do that, and do not try it again.",
            )
        approval: dict[str, Any] | None = None
        if _needs_approval(t, principal, given):
            decision = await _approval(t, input, arguments, ctx)
            approval = decision.model_dump()
            if not decision.approved:
                who = decision.by or "a reviewer"
                why = f": {decision.comment}" if decision.comment else ""
                reason = (
                    f"Not done: the call of {t.name} was rejected by {who}{why}. The tool did "
                    "not run; tell the user, and do not try it again."
                )
                record("rejected", reason, approval)
                raise ToolRefusedError(ctx.path, reason, status="rejected")

        async def call() -> Any:
            with acting_for(principal):
                return await t.invoke(input, self.tool_ctx, ctx)

        async def effect() -> Any:
            result = await call()
            try:  # checkpointed as JSON: what cannot be, the model hears as text anyway
                pydantic_core.to_json(result)
            except pydantic_core.PydanticSerializationError:
                return str(result)
            return result

        try:
            result = await (ctx.effects.run(effect, ctx) if t.side_effect else call())
        except Exception as e:
            record("failed", getattr(e, "reason", None) or str(e), approval)
            raise
        record("ok", result, approval)
        return result


def _arguments(args: str) -> Any:
    try:
        return json.loads(args or "{}")
    except ValueError:
        return args


def _needs_approval(t: Tool, principal: Principal | None, arguments: dict[str, Any]) -> bool:
    rule = t.needs_approval
    if isinstance(rule, bool):
        return rule
    try:
        return bool(rule(principal, arguments))
    except Exception:  # a rule that fails asks a person: never skip an approval by accident
        return True


class _ApprovalRequest(Step[Any, Any]):
    """What a tool call's approval is recorded as: `agent/tool[n]/approval`, once when it is
    asked (awaiting approval) and once when decided."""

    kind = "approval"

    async def run(self, input: Any, ctx: RunContext) -> Any:  # pragma: no cover - a record
        return input


_APPROVAL = _ApprovalRequest("approval")


def _record_approval(ctx: RunContext, request: dict[str, Any], state: dict[str, Any]) -> None:
    at = ctx.child("approval")
    now = time.time()
    for hook in ctx.hooks:
        try:  # a record that cannot be written never stops the approval itself
            hook.on_step_end(
                at, step=_APPROVAL, input=request, output=state, error=None, started_at=now,
                latency_s=0.0,
            )  # fmt: skip
        except Exception:  # pragma: no cover - a broken hook
            continue


async def _approval(t: Tool, args: str, arguments: Any, ctx: RunContext) -> Decision:
    """Wait for a person's decision on this call of `t` (recorded as asked and as decided)."""
    if not (ctx.effects.durable or ctx.effects.approvals):
        raise ConfigError(
            f"{ctx.path}: the tool {t.name!r} needs approval (needs_approval=True), and a run "
            "waits for one only when it is durable: use `llmflow run` (durable unless "
            "--no-durable or LLMFLOW_DURABLE=0) or llmflow.durable.run_durable in Python, or "
            "drop needs_approval"
        )
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items()) if isinstance(
        arguments, dict
    ) else args  # fmt: skip
    request = {"tool": t.name, "arguments": arguments}
    _record_approval(ctx, request, {"status": "awaiting approval"})
    decision = await ctx.effects.approval(ctx, f"{t.name}({shown})", details=request)
    state = "approved" if decision.approved else "rejected"
    _record_approval(ctx, request, {"status": state, **decision.model_dump()})
    return decision


class AgentStep(Step[Any, Any]):
    """An agent: instructions, tools, handoffs and an output type, run by the SDK's Runner."""

    kind = "agent"

    def __init__(
        self,
        name: str,
        *,
        instructions: str | Path,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        handoffs: Sequence[AgentStep] = (),
        output: Any = str,
        prompt: str | None = None,
        model: str | None = None,
        max_turns: int = 10,
        temperature: float = 0.0,
        max_tokens: int = 512,
        max_tool_rounds: int | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.instructions = read_instructions(instructions)
        self.tools = [t if isinstance(t, Tool) else tool(t) for t in tools]
        self.handoffs = list(handoffs)
        self.output = output
        self.model = model
        self.max_turns = max_turns
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_tool_rounds = max_tool_rounds
        self.description = description or f"The {name} agent."
        self._prompt = PromptTemplate(name, prompt)
        self._sdk_agent: Agent[Any] | None = None
        self._root: _Node | None = None

    def children(self) -> list[tuple[str, Step[Any, Any]]]:
        return [(f"handoff {h.name}", h) for h in self.handoffs]

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool:
        """This agent as a tool of another agent: it takes a text input and answers."""

        async def invoke(args: str, tool_ctx: ToolContext[Any], ctx: RunContext) -> Any:
            text = json.loads(args or "{}").get("input", "")
            output = await self.run(text, ctx)
            return output if isinstance(output, str) else json.dumps(output, default=str)

        return Tool(
            name or self.name.replace("-", "_"),
            description or self.description,
            {
                "type": "object",
                "properties": {"input": {"type": "string", "description": "The request."}},
                "required": ["input"],
                "additionalProperties": False,
            },
            invoke,
        )

    def sdk_agent(self) -> Agent[Any]:
        """The SDK agent that runs this step, built on first use with the step's settings at
        that time, then reused by every run (see `_Run` for what each run supplies)."""
        if self._sdk_agent is None:
            self._root = _Node(self, None)
            self._sdk_agent = self._build(self._root)
        return self._sdk_agent

    def _build(self, node: _Node) -> Agent[Any]:
        instructions = self.instructions
        if any(t.untrusted for t in self.tools) and UNTRUSTED_RULE not in instructions:
            instructions = f"{instructions}\n\n{UNTRUSTED_RULE}"
        return Agent(
            name=self.name,
            handoff_description=self.description,
            instructions=instructions,
            tools=[_sdk_tool(t, node) for t in self.tools],
            handoffs=[h._build(_Node(h, node)) for h in self.handoffs],
            output_type=None if self.output is str else self.output,
            model=_RunModel(node),
            model_settings=ModelSettings(temperature=self.temperature, max_tokens=self.max_tokens),
        )

    def render(self, input: Any) -> str:
        """The user message for `input`."""
        return self._prompt.render(input)

    async def run(self, input: Any, ctx: RunContext) -> Any:
        sdk_agent = self.sdk_agent()
        assert self._root is not None
        # A context variable, not an attribute of the shared SDK agent: runs of this step may
        # be in flight at once (batches, parallel patterns), each in its own asyncio task, and
        # an agent used as a tool runs a nested run inside this one's. The tasks the Runner
        # starts inherit the value; `reset` restores the outer run's when this one ends.
        token = _current_run.set(_Run(self._root, ctx))
        try:
            result = await Runner.run(
                sdk_agent,
                self.render(input),
                max_turns=self.max_turns,
                run_config=NO_TRACING,
            )
        except MaxTurnsExceeded as e:
            raise StepError(
                ctx.path,
                f"the agent did not finish within max_turns={self.max_turns}: raise max_turns "
                "or give it fewer, clearer tools",
            ) from e
        except UserError as e:  # a tool misconfigured (not failed): the item fails, saying why
            if isinstance(e.__cause__, ConfigError):
                raise e.__cause__ from None
            raise
        finally:
            _current_run.reset(token)
        return result.final_output


class _Node:
    """One SDK agent in a step's agent tree: the step's own (no parent), or a handoff's, one
    node per place it is handed off from, as each place records under its own path."""

    __slots__ = ("parent", "root", "step")

    def __init__(self, step: AgentStep, parent: _Node | None) -> None:
        self.step = step
        self.parent = parent
        self.root: _Node = parent.root if parent is not None else self


class _Scope:
    """What one node's model and tool calls use in one run."""

    __slots__ = ("calls", "ctx", "model")

    def __init__(self, step: AgentStep, ctx: RunContext) -> None:
        self.ctx = ctx
        """The agent's context: its path, and the observer of its model calls."""
        self.model = GatewayModel(
            ctx.gateway,
            step.model or ctx.model,
            observer=ctx,
            max_tool_rounds=step.max_tool_rounds,
        )
        self.calls = itertools.count(1)
        """Numbers this agent's tool calls in this run: `lookup[1]`, `refund[2]`."""


class _Run:
    """One run of an agent step: its context, and each node's scope, made on first use."""

    __slots__ = ("ctx", "root", "scopes")

    def __init__(self, root: _Node, ctx: RunContext) -> None:
        self.root = root
        self.ctx = ctx
        self.scopes: dict[_Node, _Scope] = {}

    def scope(self, node: _Node) -> _Scope:
        scope = self.scopes.get(node)
        if scope is None:
            # A handoff's context is its parent's child, named after it, as before.
            parent = self.scope(node.parent).ctx if node.parent is not None else None
            ctx = parent.child(node.step.name) if parent is not None else self.ctx
            scope = self.scopes[node] = _Scope(node.step, ctx)
        return scope


_current_run: ContextVar[_Run | None] = ContextVar("llmflow_agent_run", default=None)
"""The agent step run in progress in this task (set by `AgentStep.run`)."""


def _scope(node: _Node) -> _Scope:
    """`node`'s scope in the run in progress."""
    run = _current_run.get()
    if run is None or run.root is not node.root:
        raise RuntimeError(
            f"the SDK agent of step {node.root.step.name!r} runs only within AgentStep.run"
        )
    return run.scope(node)


class _RunModel(Model):
    """The model of a step's SDK agent: each call goes to the `GatewayModel` of the run in
    progress (its gateway and model name, recorded to the agent's context in that run)."""

    def __init__(self, node: _Node) -> None:
        self.node = node

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return await _scope(self.node).model.get_response(*args, **kwargs)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return _scope(self.node).model.stream_response(*args, **kwargs)


def _sdk_tool(t: Tool, node: _Node) -> FunctionTool:
    """`t` as an SDK tool of `node`'s agent: each call runs as a recorded step of the agent."""

    async def call(tool_ctx: ToolContext[Any], args: str) -> Any:
        scope = _scope(node)
        step = _ToolCall(t, tool_ctx)
        try:
            result = await step.invoke(args, scope.ctx, f"{t.name}[{next(scope.calls)}]")
        except ConfigError:  # not the tool failing but how it is set up: fail the item
            raise
        except ToolRefusedError as e:  # recorded as refused (or rejected); the model hears why
            return e.reason
        except Exception as e:  # recorded by the step; the model hears of it and goes on
            reason = getattr(e, "reason", str(e))
            return f"Error: the tool {t.name} failed: {reason}"
        if t.untrusted:
            text = result if isinstance(result, str) else json.dumps(result, default=str)
            return mark_untrusted(text, f"{t.name} result")
        return result

    return FunctionTool(
        name=t.name,
        description=t.description,
        params_json_schema=t.parameters,
        # A lambda, as it has no annotations: the SDK resolves the type hints of
        # `on_invoke_tool` on every call (agents/tool.py, `get_type_hints`), and this module's
        # annotations are strings (`from __future__ import annotations`), which it would
        # evaluate each time (~20 µs a call).
        on_invoke_tool=lambda tool_ctx, args: call(tool_ctx, args),
        strict_json_schema=t.strict,
    )


agent = AgentStep
"""An agent step: `agent(name, instructions=..., tools=[...], handoffs=[...])`."""
