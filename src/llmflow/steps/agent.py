"""The agent step: an LLM-driven loop on the OpenAI Agents SDK's Runner.

The Runner runs on `GatewayModel`, so every model call in the loop goes through the gateway
(limits, retries, metering, records), on any provider, the embedded model included. Every
tool call runs as a recorded step (`agent/lookup[1]`: arguments, result, error, latency);
tools declared with `side_effect=True` are recorded with kind `action`. Other agent steps can
be handoffs or tools (`other.as_tool()`). `max_turns` bounds the loop; on the embedded model
tools are also withheld after a few rounds, so an agent always ends. Tracing to OpenAI is off:
llmflow sends no telemetry.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from agents import Agent, FunctionTool, MaxTurnsExceeded, RunConfig, Runner, function_tool
from agents.tool_context import ToolContext

from ..errors import ConfigError, StepError
from ..models.agents_adapter import GatewayModel
from ..runtime.context import RunContext
from .base import Step
from .llm import read_instructions, render_input

_jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
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
        strict: bool = True,
    ) -> None:
        self.name = name
        self.description = description
        self.parameters = parameters
        """JSON schema of the arguments."""
        self.invoke = invoke
        self.side_effect = side_effect
        """Changes the world (sends, pays, writes): recorded as an `action`."""
        self.strict = strict


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
) -> Any:
    """Make a tool from a function (sync or async, typed arguments, docstring as description):
    `tool(lookup)`, or `@tool(side_effect=True)` for one that changes something."""

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
            strict=base.strict_json_schema,
        )

    return wrap(fn) if fn is not None else wrap


class _ToolCall(Step[str, Any]):
    """One call of a tool, as a recorded step."""

    def __init__(self, tool: Tool, tool_ctx: ToolContext[Any]) -> None:
        super().__init__(tool.name)
        self.kind = "action" if tool.side_effect else "tool"
        self.tool = tool
        self.tool_ctx = tool_ctx

    async def run(self, input: str, ctx: RunContext) -> Any:
        return await self.tool.invoke(input, self.tool_ctx, ctx)


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
        try:
            self._prompt = _jinja.from_string(prompt) if prompt is not None else None
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"step {name!r}: prompt template line {e.lineno}: {e.message}") from e

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

    def sdk_agent(self, ctx: RunContext) -> Agent[Any]:
        """The SDK agent for one run: its model and tools report to `ctx`."""
        from agents import ModelSettings

        counter = itertools.count(1)
        tools = [self._sdk_tool(t, ctx, counter) for t in self.tools]
        handoffs = [h.sdk_agent(ctx.child(h.name)) for h in self.handoffs]
        return Agent(
            name=self.name,
            handoff_description=self.description,
            instructions=self.instructions,
            tools=list(tools),
            handoffs=list(handoffs),
            output_type=None if self.output is str else self.output,
            model=GatewayModel(
                ctx.gateway,
                self.model or ctx.model,
                observer=ctx,
                max_tool_rounds=self.max_tool_rounds,
            ),
            model_settings=ModelSettings(temperature=self.temperature, max_tokens=self.max_tokens),
        )

    def _sdk_tool(self, t: Tool, ctx: RunContext, counter: itertools.count[int]) -> FunctionTool:
        async def on_invoke(tool_ctx: ToolContext[Any], args: str) -> Any:
            call = _ToolCall(t, tool_ctx)
            try:
                return await call.invoke(args, ctx, f"{t.name}[{next(counter)}]")
            except Exception as e:  # recorded by the step; the model hears of it and goes on
                reason = getattr(e, "reason", str(e))
                return f"Error: the tool {t.name} failed: {reason}"

        return FunctionTool(
            name=t.name,
            description=t.description,
            params_json_schema=t.parameters,
            on_invoke_tool=on_invoke,
            strict_json_schema=t.strict,
        )

    def render(self, input: Any) -> str:
        if self._prompt is None:
            return render_input(input)
        variables = input.model_dump() if hasattr(input, "model_dump") else input
        if not isinstance(variables, dict):
            variables = {"input": variables}
        try:
            return self._prompt.render({"input": input, **variables})
        except jinja2.UndefinedError as e:
            raise ConfigError(f"step {self.name!r}: prompt template: {e.message}") from e

    async def run(self, input: Any, ctx: RunContext) -> Any:
        try:
            result = await Runner.run(
                self.sdk_agent(ctx),
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
        return result.final_output


def agent(
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
) -> AgentStep:
    """An agent step. `tools` are functions (or `tool(...)`s), `handoffs` other agent steps."""
    return AgentStep(
        name,
        instructions=instructions,
        tools=tools,
        handoffs=handoffs,
        output=output,
        prompt=prompt,
        model=model,
        max_turns=max_turns,
        temperature=temperature,
        max_tokens=max_tokens,
        max_tool_rounds=max_tool_rounds,
        description=description,
        timeout_s=timeout_s,
    )
