"""What the embedded model is asked, and how its constrained answer is read back. Small chat
templates know only system/user/assistant text, so tool turns are folded into text, and
tools are offered as one grammar-constrained JSON choice: call a tool, or answer."""

from __future__ import annotations

import json
from typing import Any

from ..ids import new_id
from .client import Message, ModelRequest, ModelResponse, ToolCall

_TOOL_PREAMBLE = (
    "You can call tools. To call one, reply with JSON "
    '{"tool": "<name>", "arguments": {...}}. To give your final answer, reply with JSON '
    '{"answer": ...}. Tools:\n'
)


def chat_prompt(request: ModelRequest) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Chat messages for the model's template, and the JSON schema to constrain with."""
    messages = [_plain(m) for m in request.messages]
    if not request.tools:
        return messages, request.output_schema
    listing = "\n".join(
        f"- {t.name}: {t.description} Arguments: {json.dumps(t.parameters)}" for t in request.tools
    )
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{_TOOL_PREAMBLE}{listing}"
    else:
        messages.insert(0, {"role": "system", "content": _TOOL_PREAMBLE + listing})
    choices: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": t.name}, "arguments": t.parameters},
            "required": ["tool", "arguments"],
        }
        for t in request.tools
    ]
    answer = request.output_schema or {"type": "string"}
    choices.append({"type": "object", "properties": {"answer": answer}, "required": ["answer"]})
    return messages, {"anyOf": choices}


def _plain(m: Message) -> dict[str, Any]:
    """Small chat templates know only system/user/assistant text: fold tool turns into text."""
    if m.role == "tool":
        return {"role": "user", "content": f"Tool result ({m.tool_call_id}): {m.content}"}
    if m.tool_calls:
        # As prose, not the JSON of a call: once tools are withheld, a small model copies the
        # JSON of earlier turns into its final answer.
        calls = "; ".join(f"{c.name}({c.arguments or '{}'})" for c in m.tool_calls)
        return {"role": "assistant", "content": f"I called the tool {calls}."}
    return {"role": m.role, "content": m.content or ""}


def strict_json(text: str) -> str:
    """llama.cpp's JSON grammar lets raw control characters (newlines) into strings, which
    strict parsers (the Agents SDK's among them) reject: re-serialise what parses leniently."""
    try:
        return json.dumps(json.loads(text, strict=False), ensure_ascii=False)
    except ValueError:
        return text  # not JSON after all: the step's validation reports it


def split_tool_choice(response: ModelResponse, request: ModelRequest) -> None:
    """Turn the constrained choice into a tool call, or into the answer text."""
    choice = json.loads(response.text or "{}")
    if "tool" in choice:
        response.tool_calls = [
            ToolCall(
                id=f"call_{new_id()}",
                name=choice["tool"],
                arguments=json.dumps(choice.get("arguments", {})),
            )
        ]
        response.text = None
        response.finish_reason = "tool_calls"
    else:
        answer = choice.get("answer")
        response.text = (
            answer
            if isinstance(answer, str) and request.output_schema is None
            else (json.dumps(answer))
        )
