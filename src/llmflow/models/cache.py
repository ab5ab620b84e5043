"""The response cache: exact-match answers of deterministic calls, kept in the run store.

The key covers everything that decides an answer: the model, the messages (instructions and
input), the output schema, the tools and the sampling parameters. Only deterministic calls
(temperature 0, or a fixed seed) are cached: a sampled answer is meant to vary. Only valid
answers are kept: the gateway stores an answer only when the caller's check passes (an llm
step's output type), and drops a stored one that fails it (`Gateway.complete(validate=...)`).
"""

from __future__ import annotations

import hashlib
import json

import pydantic_core

from ..store.sqlite import RunStore
from .client import ModelRequest, ModelResponse, ToolCall, Usage


def cache_key(model: str, request: ModelRequest) -> str:
    payload = pydantic_core.to_json([model, request])
    return hashlib.sha256(payload).hexdigest()


def cacheable(request: ModelRequest) -> bool:
    return request.sampling.temperature == 0 or request.sampling.seed is not None


class ResponseCache:
    """Reads and writes cached responses in a `RunStore` (writes land with the store's flush)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._pending: dict[str, ModelResponse] = {}

    def get(self, key: str) -> ModelResponse | None:
        if key in self._pending:
            return self._pending[key]
        text = self.store.cache_get(key)
        if text is None:
            return None
        data = json.loads(text)
        return ModelResponse(
            text=data["text"],
            tool_calls=[ToolCall(**c) for c in data["tool_calls"]],
            usage=Usage(**data["usage"]),
            finish_reason=data["finish_reason"],
            model=data["model"],
            choice_probs=data.get("choice_probs"),
        )

    def drop(self, key: str) -> None:
        """Forget the answer stored under `key` (it failed its caller's check)."""
        self._pending.pop(key, None)
        self.store.cache_drop(key)

    def put(self, key: str, model: str, response: ModelResponse) -> None:
        self._pending[key] = response
        self.store.cache_put(key, model, pydantic_core.to_json(response).decode())
