"""The OpenAI Agents SDK's `Model`, served by the gateway.

An agent's Runner calls `GatewayModel`, which converts the SDK's items to the gateway's
messages and back (with the SDK's own Chat Completions converter), so every model call in an
agent loop is limited, retried, metered and recorded like any other, whatever the provider,
the embedded model included. Small local models loop on tools: after `max_tool_rounds`
rounds of tool results the tools are withheld, so the agent has to answer and always ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from agents import Handoff, Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.items import TResponseInputItem, TResponseStreamEvent
from agents.models.chatcmpl_converter import Converter
from openai.types.chat import ChatCompletionMessage
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.responses import Response, ResponseCompletedEvent, ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from ..ids import new_id
from .client import Message, ModelRequest, Role, Sampling, ToolCall, ToolSpec
from .gateway import CallObserver, Gateway


class GatewayModel(Model):
    """An Agents SDK model whose calls all go through an llmflow `Gateway`."""

    def __init__(
        self,
        gateway: Gateway,
        model: str | None = None,
        *,
        observer: CallObserver | None = None,
        max_tool_rounds: int | None = None,
    ) -> None:
        self.gateway = gateway
        self.model = model
        self.observer = observer
        """Receives each call's record (a step's RunContext)."""
        resolved = model or gateway.settings.model
        self.max_tool_rounds = (
            max_tool_rounds if max_tool_rounds is not None else (4 if resolved == "local" else None)
        )
        """Tool rounds after which tools are withheld; None: no limit (default 4 for local)."""

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *args: Any,
        **kwargs: Any,  # previous_response_id, conversation_id, prompt, and any added later
    ) -> ModelResponse:
        request = self._request(
            system_instructions, input, model_settings, tools, output_schema, handoffs
        )
        response = await self.gateway.complete(request, model=self.model, observer=self.observer)
        message = ChatCompletionMessage(
            role="assistant",
            content=response.text or None,
            tool_calls=[
                ChatCompletionMessageFunctionToolCall(
                    id=c.id, type="function", function=Function(name=c.name, arguments=c.arguments)
                )
                for c in response.tool_calls
            ]
            or None,
        )
        usage = Usage(
            requests=1,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            total_tokens=response.usage.total_tokens,
        )
        return ModelResponse(
            output=Converter.message_to_output_items(message), usage=usage, response_id=None
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *args: Any,
        **kwargs: Any,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Streams the whole answer as one completed response (the gateway is not streaming)."""
        result = await self.get_response(
            system_instructions, input, model_settings, tools, output_schema, handoffs, tracing
        )
        response = Response(
            id=f"resp_{new_id()}",
            created_at=time.time(),
            model=self.model or self.gateway.settings.model,
            object="response",
            output=result.output,
            tool_choice="auto",
            tools=[],
            parallel_tool_calls=False,
            usage=ResponseUsage(
                input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens,
                total_tokens=result.usage.total_tokens,
                input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
                output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
            ),
        )
        yield ResponseCompletedEvent(
            type="response.completed", response=response, sequence_number=0
        )

    def _request(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
    ) -> ModelRequest:
        messages = [_message(m) for m in Converter.items_to_messages(input)]
        if system_instructions:
            messages.insert(0, Message("system", system_instructions))
        specs = [_spec(Converter.tool_to_openai(t)) for t in tools]
        specs += [_spec(Converter.convert_handoff_tool(h)) for h in handoffs]
        # A round is one assistant turn that called tools (however many, in parallel).
        rounds = sum(m.role == "assistant" and bool(m.tool_calls) for m in messages)
        if model_settings.tool_choice == "none" or (
            self.max_tool_rounds is not None and rounds >= self.max_tool_rounds
        ):
            specs = []
        schema = None
        if output_schema is not None and not output_schema.is_plain_text():
            schema = output_schema.json_schema()
        return ModelRequest(
            messages=messages,
            output_schema=schema,
            schema_name="final_output",
            tools=specs,
            sampling=Sampling(
                temperature=model_settings.temperature or 0.0,
                max_tokens=model_settings.max_tokens or 512,
                top_p=model_settings.top_p,
            ),
        )


def _spec(tool: Any) -> ToolSpec:
    fn = tool["function"]
    return ToolSpec(
        name=fn["name"], description=fn.get("description") or "", parameters=fn["parameters"]
    )


def _message(m: Any) -> Message:
    """A Chat Completions message param (a dict) as a gateway message."""
    content = m.get("content")
    if isinstance(content, list):  # content parts: keep the text
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    calls = [
        ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
        for c in m.get("tool_calls") or []
    ]
    role: Role = m["role"] if m["role"] in ("system", "user", "assistant", "tool") else "system"
    return Message(
        role,
        content if content is None or isinstance(content, str) else json.dumps(content),
        tool_calls=calls,
        tool_call_id=m.get("tool_call_id"),
    )
