"""The OpenAI Agents SDK's `Model`, served by the gateway.

An agent's Runner calls `GatewayModel`, which converts the SDK's items to the gateway's
messages and back, so every model call in an agent loop is limited, retried, metered and
recorded like any other, whatever the provider, the embedded model included. The common items
are converted here directly; anything else goes through the SDK's own Chat Completions
converter. Small local models loop on tools: after `max_tool_rounds`
rounds of tool results the tools are withheld, so the agent has to answer and always ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from agents import Handoff, Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.items import TResponseInputItem, TResponseOutputItem, TResponseStreamEvent
from agents.models.chatcmpl_converter import Converter
from agents.models.fake_id import FAKE_RESPONSES_ID
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from ..ids import new_id
from .client import Message, ModelRequest, Role, Sampling, ToolCall, ToolSpec
from .client import ModelResponse as GatewayResponse
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
            max_tool_rounds
            if max_tool_rounds is not None
            else (4 if resolved == "local" or resolved.startswith("local:") else None)
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
        usage = Usage(
            requests=1,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            total_tokens=response.usage.total_tokens,
        )
        return ModelResponse(output=_output_items(response), usage=usage, response_id=None)

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
        messages = _messages(input)
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


def _messages(input: str | list[TResponseInputItem]) -> list[Message]:
    """The SDK's input items as gateway messages.

    The Runner hands over the whole history on every turn, as new dicts each time, so this
    runs over every item so far on every model call. The common items of an agent loop (text
    messages, function calls and their outputs, the assistant's text) are converted directly
    by `_plain_messages`, with the same result as the SDK's `Converter.items_to_messages`
    followed by `_message`, at a fraction of the cost; a history with any other item
    (content parts, reasoning, refusals, ...) goes through the SDK's converter whole.
    """
    if isinstance(input, str):
        return [Message("user", input)]
    messages = _plain_messages(input)
    if messages is None:
        messages = [_message(m) for m in Converter.items_to_messages(input)]
    return messages


_EASY_KEYS = frozenset(("content", "role", "type", "phase"))
_ROLES: dict[str, Role] = {
    "user": "user",
    "system": "system",
    "developer": "system",  # as `_message` maps it
    "assistant": "assistant",
}


def _plain_messages(items: list[Any]) -> list[Message] | None:
    """`items` as messages when they are all of the common kinds with text content; None
    otherwise (the caller then uses the SDK's converter).

    This mirrors `Converter.items_to_messages` (agents/models/chatcmpl_converter.py): item
    kinds are recognised in its order and by its tests, and function calls attach to the
    open assistant turn (made by a function call or an assistant output message), which any
    other message closes. Each branch bails out on what the SDK treats specially.
    """
    messages: list[Message] = []
    turn: Message | None = None  # the open assistant turn that function calls attach to
    for item in items:
        if not isinstance(item, dict):
            return None
        kind = item.get("type")
        if "role" in item and "content" in item and item.keys() <= _EASY_KEYS:
            # An "easy" input message (`{"role": "user", "content": "hi"}`).
            content, role = item["content"], item["role"]
            role = _ROLES.get(role) if isinstance(role, str) else None
            if item.get("type", "message") != "message" or role is None:
                return None
            if not isinstance(content, str):
                return None
            if item.get("phase") not in (None, "commentary", "final_answer"):
                return None
            turn = None
            messages.append(Message(role, content))
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
            if not (isinstance(call_id, str) and isinstance(name, str)):
                return None
            if not isinstance(arguments, str):
                return None
            if turn is None:
                # Appended now, filled as calls come: nothing else is appended while it is open.
                turn = Message("assistant")
                messages.append(turn)
            turn.tool_calls.append(ToolCall(call_id, name, arguments or "{}"))
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not (isinstance(call_id, str) and isinstance(output, str)):
                return None
            turn = None
            messages.append(Message("tool", output, tool_call_id=call_id))
        elif kind == "message" and item.get("role") == "assistant" and "id" in item:
            # The assistant's output message: text parts only (refusals, audio: the SDK's).
            parts = item.get("content")
            if not isinstance(parts, list):
                return None
            texts: list[str] = []
            for part in parts:
                if not (isinstance(part, dict) and part.get("type") == "output_text"):
                    return None
                if not isinstance(part.get("text"), str):
                    return None
                texts.append(part["text"])
            joined = "\n".join(texts) if texts else None
            if turn is not None and turn.tool_calls and turn.content is None:
                # Text after the function calls of the same (streamed) turn joins that turn.
                turn.content = joined
            else:
                turn = Message("assistant", joined)
                messages.append(turn)
        else:
            return None
    return messages


def _output_items(response: GatewayResponse) -> list[TResponseOutputItem]:
    """The gateway's answer as the SDK's output items, as `Converter.message_to_output_items`
    makes them from a Chat Completions message (the text as a message, then one item per tool
    call, with the same fields set), without building that message first. The constructors
    validate, which pydantic-core does faster than the openai models' `model_construct`."""
    items: list[TResponseOutputItem] = []
    if response.text:
        text = ResponseOutputText(
            text=response.text, type="output_text", annotations=[], logprobs=[]
        )
        items.append(
            ResponseOutputMessage(
                id=FAKE_RESPONSES_ID,
                content=[text],
                role="assistant",
                type="message",
                status="completed",
            )
        )
    for call in response.tool_calls:
        items.append(
            ResponseFunctionToolCall(
                id=FAKE_RESPONSES_ID,
                call_id=call.id,
                arguments=call.arguments,
                name=call.name,
                type="function_call",
            )
        )
    return items


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
