"""The agent step: an LLM-driven loop on the OpenAI Agents SDK's Runner.

The Runner runs on `GatewayModel`, so every model call in the loop goes through the gateway
(limits, retries, metering, records), on any provider, the embedded model included. Every
tool call runs as a recorded step (`agent/lookup[1]`: arguments, result, error, latency);
tools declared with `side_effect=True` are recorded with kind `action` and, in a durable run,
run exactly once: each call is a durable effect keyed by the run, the item and its path
(`support/refund[2]`), so a resumed run answers a call that completed from its checkpoint and
does not call the tool again. Tools declared `needs_approval=True` pause the durable run
until someone runs `llmflow approve` or `llmflow reject` (see `agent_tools.ToolCall`). Other
agent steps can be handoffs or tools (`other.as_tool()`). `max_turns` bounds the loop; on the
embedded model tools are also withheld after a few rounds, so an agent always ends. Tracing
to OpenAI is off: llmflow sends no telemetry.

A step builds its SDK agent (with its tools and handoffs) once, on its first run, and reuses
it: building one costs more than a model call. What differs between runs (the gateway, the
model name, where model calls and tool calls are recorded, the tool-call numbering) is looked
up at call time in the run in progress, which `AgentStep.run` puts in a context variable.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

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
)
from agents.tool_context import ToolContext

from ..errors import ConfigError, StepError
from ..models.agents_adapter import GatewayModel
from .agent_tools import Tool as Tool
from .agent_tools import ToolCall
from .agent_tools import tool as tool
from .base import Step
from .context import RunContext
from .principal import ToolRefusedError
from .prompt import PromptTemplate, read_instructions
from .untrusted import UNTRUSTED_RULE, mark_untrusted

NO_TRACING = RunConfig(tracing_disabled=True)


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

    def asks_approval(self, run_id: str | None) -> bool:
        return any(t.asks_approval(run_id) for t in self.tools)

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool:
        """This agent as a tool of another agent: it takes a text input and answers."""

        async def invoke(args: str, tool_ctx: ToolContext[Any], ctx: RunContext) -> Any:
            text = json.loads(args or "{}").get("input", "")
            output = await self.run(text, ctx)
            return output if isinstance(output, str) else json.dumps(output, default=str)

        made = Tool(
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
        made.agent = self
        return made

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
        step = ToolCall(t, tool_ctx)
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
