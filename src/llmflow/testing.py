"""Test your workflows without a model: a scripted model and a network guard.

```python
from llmflow.testing import ScriptedModel, scripted_gateway

model = ScriptedModel(['{"value": "billing"}', "A short summary."])
result = await run(workflow, items, gateway=scripted_gateway(model))
assert len(model.requests) == 2
```

The scripted model stands in for the model only: the gateway, steps and store under test are
the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .models.client import ModelClient, ModelRequest, ModelResponse, Usage
from .models.gateway import Gateway, ProviderLimits
from .settings import Settings

Reply = str | ModelResponse | BaseException
Handler = Callable[[ModelRequest], Reply]


class ScriptExhaustedError(AssertionError):
    """The scripted model was called more times than it has replies."""


class ScriptedModel(ModelClient):
    """A model that answers from a script: a list of replies, or a function of the request.

    A reply is the answer text (JSON text for a structured output), a full `ModelResponse`
    (for tool calls or a cut-off), or an exception to raise (e.g. `TransientModelError`).
    Usage is counted as one token per four characters unless a `ModelResponse` sets it.
    """

    provider = "scripted"

    def __init__(
        self,
        script: Iterable[Reply] | Handler = (),
        *,
        latency_s: float = 0.0,
    ) -> None:
        self._handler: Handler | None = script if callable(script) else None
        self._replies: list[Reply] = [] if callable(script) else list(script)
        self._latency_s = latency_s
        self.requests: list[ModelRequest] = []
        """Every request received, in order."""

    async def complete(self, model: str, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        if self._handler is not None:
            reply = self._handler(request)
        elif self._replies:
            reply = self._replies.pop(0)
        else:
            raise ScriptExhaustedError(
                f"the scripted model has no reply left for request {len(self.requests)}"
            )
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, ModelResponse):
            return reply
        prompt = sum(len(m.content or "") for m in request.messages)
        return ModelResponse(
            text=reply,
            usage=Usage(input_tokens=prompt // 4 + 1, output_tokens=len(reply) // 4 + 1),
            model=model,
        )


def json_reply(value: Any) -> str:
    """The JSON text a structured-output step expects for `value`."""
    return json.dumps(value)


def scripted_gateway(
    model: ScriptedModel, *, settings: Settings | None = None, limits: ProviderLimits | None = None
) -> Gateway:
    """A gateway whose default model is `model` (served as `scripted`), retries without waits."""
    settings = (settings or Settings()).model_copy(update={"model": "scripted"})
    gateway = Gateway(
        settings,
        limits={"scripted": limits or ProviderLimits(max_concurrency=1_000)},
        backoff=lambda _retry: 0.0,
    )
    gateway.register("scripted", model)
    return gateway


class NetworkForbiddenError(RuntimeError):
    """A test tried to reach a non-local address."""


@contextlib.contextmanager
def forbid_network() -> Iterator[None]:
    """Make any connection to a non-loopback address fail, so no test calls a real provider."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(address: Any) -> None:
        if isinstance(address, tuple):
            host = address[0]
            try:
                local = ipaddress.ip_address(host).is_loopback
            except ValueError:
                local = host == "localhost"
            if not local:
                raise NetworkForbiddenError(f"network access to {host!r} is forbidden in tests")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
