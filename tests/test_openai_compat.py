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
from llmflow.models.gateway import ModelCall
from llmflow.models.openai_compat import OpenAIClient

from .fault_server import FAULTS, closed_port, serve_faults

JSON = {"content-type": "application/json"}
HTML = {"content-type": "text/html"}


class Recorded:
    budgets = ()

    def __init__(self) -> None:
        self.calls: list[ModelCall] = []

    def on_model_call(self, call: ModelCall) -> None:
        self.calls.append(call)


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


# -- faults: every one a retry may cure is retried; the others name the endpoint and the fix ---


@pytest.mark.parametrize("kind", FAULTS)
async def test_each_fault_is_retried_and_the_call_then_succeeds(kind: str) -> None:
    with serve_faults(lambda body: "done", rate=1.0, faults=(kind,), max_in_a_row=1) as log:
        client = OpenAIClient(api_key="sk-test", base_url=log.url)
        gateway = Gateway(Settings(), backoff=lambda retry: 0.0)
        gateway.register("srv", client)
        observer = Recorded()
        response = await gateway.complete(
            ModelRequest(messages=[Message("user", "x")]), model="srv:m", observer=observer
        )
        await client.aclose()
    if kind == "invalid_output":  # a well-formed answer: the step judges it, not the client
        assert response.text == "" and observer.calls[0].attempts == 1
        return
    assert response.text == "done"
    assert observer.calls[0].attempts == 2
    assert log.faults == {kind: 1} and log.successes == 1


async def test_answers_that_are_not_completions_are_transient_and_name_the_endpoint() -> None:
    cases = {
        "malformed body": httpx2.Response(200, content=b'{"choices": [', headers=JSON),
        "HTML page": httpx2.Response(200, content=b"<html><h1>502</h1></html>", headers=HTML),
        "text": httpx2.Response(
            200, content=b"upstream reset", headers={"content-type": "text/plain"}
        ),
        "without choices": httpx2.Response(200, json={"object": "chat.completion"}),
        "an error": httpx2.Response(200, json={"error": {"message": "model overloaded"}}),
    }
    server = Server(*cases.values())
    client = server.client()
    for what in cases:
        with pytest.raises(TransientModelError) as info:
            await client.complete("m", ModelRequest(messages=[Message("user", "x")]))
        assert "http://127.0.0.1:8000/v1" in str(info.value), what
        assert info.value.fault is None
    assert "model overloaded" in str(info.value)


async def test_a_closed_port_is_a_provider_fault_naming_the_url() -> None:
    url = closed_port()
    client = OpenAIClient(api_key="sk-test", base_url=url)
    with pytest.raises(TransientModelError) as info:
        await client.complete("m", ModelRequest(messages=[Message("user", "x")]))
    await client.aclose()
    assert f"cannot connect to {url}" in str(info.value)
    assert info.value.fault is not None and "--base-url" in info.value.fault.fix


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_refused_keys_and_unknown_endpoints_are_faults_and_keys_never_shown(
    status: int,
) -> None:
    key = "sk-canary-0123456789abcdef"
    body = {"error": {"message": f"Incorrect API key provided: {key}. Bearer {key}"}}
    server = Server(httpx2.Response(status, json=body))
    client = OpenAIClient(
        api_key=key,
        base_url="http://user:pw-canary-42@127.0.0.1:8000/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server)),
    )
    with pytest.raises(ModelCallError) as info:
        await client.complete("m", ModelRequest(messages=[Message("user", "x")]))
    assert not isinstance(info.value, TransientModelError)
    assert info.value.fault is not None and f"HTTP {status}" in info.value.fault.what
    text = str(info.value)
    assert key not in text and "pw-canary-42" not in text
    assert "http://127.0.0.1:8000/v1 answered HTTP" in text
    assert client.provider == "127.0.0.1:8000" and client.endpoint == "http://127.0.0.1:8000/v1"


async def test_an_account_without_credit_is_a_fault_not_a_rate_limit() -> None:
    body = {"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}
    server = Server(httpx2.Response(429, json=body))
    with pytest.raises(ModelCallError) as info:
        await server.client().complete("m", ModelRequest(messages=[Message("user", "x")]))
    assert not isinstance(info.value, TransientModelError)
    assert info.value.fault is not None and "credit" in info.value.fault.what
