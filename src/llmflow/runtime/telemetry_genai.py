"""Span names and attributes of runs, items, steps, model calls and tool calls, following the
OpenTelemetry GenAI semantic conventions (`gen_ai.*`, semconv 1.37+; `gen_ai.system` is kept
next to `gen_ai.provider.name` for backends that read the older name), plus `llmflow.*`
attributes for what the conventions have no name for (step paths, cost, cache hits).

Message content (`gen_ai.input.messages`, `gen_ai.output.messages`, tool arguments and
results) is added only when `content` is true. Every string goes through the redaction filter
(`llmflow.redact`), so a configured API key never leaves in an attribute. No OpenTelemetry
import here: these are plain dictionaries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..models.client import Message, ModelResponse
from ..models.gateway import ModelCall
from ..redact import redact

Attributes = dict[str, str | bool | int | float | list[str]]
"""Span attributes: OpenTelemetry's primitive values (and lists of strings)."""

MAX_TEXT = 16_000
"""Characters kept of one message part, argument or result (content opt-in): a longer text is
cut, with a note of how much was left out."""

IN_PROCESS = {"local", "scripted"}
"""Providers that run in this process: their call spans are INTERNAL, the others CLIENT."""


def clean(attributes: Mapping[str, Any]) -> Attributes:
    """`attributes` without None values, every string redacted."""
    out: Attributes = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, str):
            out[key] = redact(value)
        elif isinstance(value, list | tuple):
            out[key] = [redact(str(v)) for v in value]
        elif isinstance(value, bool | int | float):
            out[key] = value
        else:
            out[key] = redact(str(value))
    return out


def cut(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}… [{len(text) - MAX_TEXT} more characters]"


def as_json(value: Any) -> str:
    """A value as JSON text (a string that already is JSON stays as it is), cut to `MAX_TEXT`."""
    if isinstance(value, str):
        return cut(value)
    try:
        return cut(json.dumps(value, default=str, ensure_ascii=False))
    except (TypeError, ValueError):
        return cut(str(value))


def _parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": message.tool_call_id,
             "result": cut(message.content or "")}
        )  # fmt: skip
        return parts
    if message.content:
        parts.append({"type": "text", "content": cut(message.content)})
    for call in message.tool_calls:
        parts.append(
            {"type": "tool_call", "id": call.id, "name": call.name,
             "arguments": _arguments(call.arguments)}
        )  # fmt: skip
    return parts


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return cut(text)


def input_messages(messages: Sequence[Message]) -> str:
    """`gen_ai.input.messages`: the chat history sent, as the conventions' JSON."""
    return json.dumps([{"role": m.role, "parts": _parts(m)} for m in messages], ensure_ascii=False)


def output_messages(response: ModelResponse) -> str:
    """`gen_ai.output.messages`: the model's answer, as the conventions' JSON."""
    answer = Message(role="assistant", content=response.text, tool_calls=response.tool_calls)
    finish = "tool_call" if response.finish_reason == "tool_calls" else response.finish_reason
    return json.dumps(
        [{"role": "assistant", "parts": _parts(answer), "finish_reason": finish}],
        ensure_ascii=False,
    )


def request_model(call: ModelCall) -> str:
    """The model's name as its provider knows it (`openai:gpt-4.1-mini` -> `gpt-4.1-mini`)."""
    prefix, sep, rest = call.model.partition(":")
    return rest if sep and prefix == call.provider and rest else call.model


def call_span(call: ModelCall, *, content: bool) -> tuple[str, Attributes]:
    """The name and attributes of a model call's span (`chat {model}`)."""
    request, response = call.request, call.response
    model = request_model(call)
    sampling = request.sampling
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": call.provider,
        "gen_ai.system": call.provider,
        "gen_ai.request.model": model,
        "gen_ai.request.temperature": sampling.temperature,
        "gen_ai.request.max_tokens": sampling.max_tokens,
        "gen_ai.request.top_p": sampling.top_p,
        "gen_ai.request.seed": sampling.seed,
        "gen_ai.request.stop_sequences": sampling.stop,
        "gen_ai.output.type": "json" if request.output_schema is not None else "text",
        "llmflow.call.id": call.id,
        "llmflow.call.attempts": call.attempts,
        "llmflow.call.cached": call.cached,
        "llmflow.call.latency_ms": round(call.latency_s * 1000, 3),
        "llmflow.cost_usd": None if call.cost is None else float(call.cost),
    }
    if response is not None:
        attributes |= {
            "gen_ai.response.model": response.model or model,
            "gen_ai.response.finish_reasons": [response.finish_reason],
            "gen_ai.usage.input_tokens": response.usage.input_tokens,
            "gen_ai.usage.output_tokens": response.usage.output_tokens,
        }
    if call.error is not None:
        attributes["error.type"] = call.error.split(":", 1)[0].strip() or "_OTHER"
    if content:
        attributes["gen_ai.input.messages"] = input_messages(request.messages)
        if response is not None:
            attributes["gen_ai.output.messages"] = output_messages(response)
    return f"chat {model}", clean(attributes)


def step_span(
    *,
    path: str,
    kind: str,
    name: str,
    model: str | None,
    input: Any,
    output: Any,
    tool: Any = None,
    tool_call_id: str | None = None,
    tool_status: str | None = None,
    content: bool,
) -> tuple[str, Attributes]:
    """The name and attributes of a step's span: `invoke_agent {name}` for an agent,
    `execute_tool {tool}` for a tool or action call, `{kind} {name}` for any other step."""
    segment = path.rsplit("/", 1)[-1]
    attributes: dict[str, Any] = {
        "llmflow.step.path": path,
        "llmflow.step.kind": kind,
        "llmflow.step.name": name,
    }
    if kind == "agent":
        attributes |= {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
            "gen_ai.request.model": model,
        }
        return f"invoke_agent {name}", clean(attributes)
    if kind in ("tool", "action"):
        tool_name = getattr(tool, "name", None) or name
        attributes |= {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool_name,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.description": getattr(tool, "description", None) or None,
            "gen_ai.tool.call.id": tool_call_id,
            "llmflow.tool.status": tool_status,
            "llmflow.tool.side_effect": kind == "action",
        }
        if content:
            attributes["gen_ai.tool.call.arguments"] = as_json(input)
            if tool_status in (None, "ok"):
                attributes["gen_ai.tool.call.result"] = as_json(output)
        return f"execute_tool {tool_name}", clean(attributes)
    return f"{kind} {segment}", clean(attributes)


def error_type(error: BaseException) -> str:
    """`error.type`: the exception's class name, with its cause's when a step names a failure
    of its code or a model call (`StepError: ValueError`)."""
    cause = error.__cause__
    if cause is None or type(cause) is type(error):
        return type(error).__name__
    return f"{type(error).__name__}: {type(cause).__name__}"
