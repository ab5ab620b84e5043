"""The OpenAI-compatible path, with the real `openai` client against a local handler."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from llmflow import (
    Gateway,
    Message,
    ModelCallError,
    ModelRequest,
    ProviderLimits,
    Settings,
    ToolSpec,
    TransientModelError,
)
from llmflow.models.openai_compat import OpenAIClient


def completion(content: str | None = "hi", tool_calls: Any = None, finish: str = "stop") -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


class Server:
    """Answers chat completions from a script and keeps the requests."""

    def __init__(self, *replies: httpx2.Response) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path.endswith("/chat/completions")
        self.requests.append(json.loads(request.content))
        self.headers.append(dict(request.headers))
        return self.replies.pop(0)

    def client(self) -> OpenAIClient:
        return OpenAIClient(
            api_key="sk-test",
            base_url="http://127.0.0.1:8000/v1",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self)),
        )


async def test_a_structured_request_and_its_answer() -> None:
    server = Server(httpx2.Response(200, json=completion('{"value": "no"}')))
    schema = {"type": "object", "properties": {"value": {"enum": ["yes", "no"]}}}
    response = await server.client().complete(
        "test-model",
        ModelRequest(
            messages=[Message("system", "Answer."), Message("user", "Is it?")],
            output_schema=schema,
            schema_name="answer",
        ),
    )
    sent = server.requests[0]
    assert sent["model"] == "test-model"
    assert sent["messages"] == [
        {"role": "system", "content": "Answer."},
        {"role": "user", "content": "Is it?"},
    ]
    assert sent["response_format"]["json_schema"] == {"name": "answer", "schema": schema}
    assert sent["temperature"] == 0.0
    assert server.headers[0]["authorization"] == "Bearer sk-test"
    assert response.text == '{"value": "no"}'
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)


async def test_tool_calls_round_trip() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    server = Server(httpx2.Response(200, json=completion(None, [call], "tool_calls")))
    tool = ToolSpec(name="lookup", description="Look up.", parameters={"type": "object"})
    response = await server.client().complete(
        "m", ModelRequest(messages=[Message("user", "x")], tools=[tool])
    )
    assert server.requests[0]["tools"][0]["function"]["name"] == "lookup"
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls[0].name == "lookup"
    assert response.tool_calls[0].id == "c1"


async def test_rate_limits_are_transient_with_retry_after_and_4xx_are_final() -> None:
    server = Server(
        httpx2.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "slow"}}),
        httpx2.Response(400, json={"error": {"message": "bad schema"}}),
    )
    client = server.client()
    with pytest.raises(TransientModelError) as info:
        await client.complete("m", ModelRequest(messages=[Message("user", "x")]))
    assert info.value.retry_after == 7
    with pytest.raises(ModelCallError, match="HTTP 400") as final:
        await client.complete("m", ModelRequest(messages=[Message("user", "x")]))
    assert not isinstance(final.value, TransientModelError)


async def test_the_gateway_retries_a_429_from_a_compatible_server() -> None:
    server = Server(
        httpx2.Response(429, headers={"retry-after-ms": "1"}, json={"error": {"message": "x"}}),
        httpx2.Response(503, json={"error": {"message": "busy"}}),
        httpx2.Response(200, json=completion("done")),
    )
    gateway = Gateway(
        Settings(),
        limits={"127.0.0.1:8000": ProviderLimits(max_retries=3)},
        backoff=lambda retry: 0.0,
    )
    gateway.register("vllm", server.client())
    response = await gateway.complete(ModelRequest(messages=[Message("user", "x")]), model="vllm:m")
    assert response.text == "done"
    assert len(server.requests) == 3
