"""OpenAI and every OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server), via `openai`.

The `openai` client's own retries are off: the gateway owns retries, so that limits,
Retry-After and records see every attempt.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

import openai

from ..errors import ModelCallError, TransientModelError
from .client import Message, ModelClient, ModelRequest, ModelResponse, ToolCall, Usage


class OpenAIClient(ModelClient):
    """Chat Completions on OpenAI or a compatible server."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        http_client: Any = None,
    ) -> None:
        self.provider = urlsplit(base_url).netloc if base_url else "openai"
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, http_client=http_client
        )

    def count_tokens(self, text: str) -> int:
        """A cautious estimate (no tokenizer offline): one token per 3 bytes, which is more
        than OpenAI's tokenizers give for text, so budgets reserve enough."""
        return len(text.encode()) // 3 + 4

    async def complete(self, model: str, request: ModelRequest) -> ModelResponse:
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": [_message(m) for m in request.messages],
            "temperature": request.sampling.temperature,
            "max_tokens": request.sampling.max_tokens,
        }
        for key in ("top_p", "seed", "stop"):
            value = getattr(request.sampling, key)
            if value is not None:
                kwargs[key] = value
        if request.choices:
            # The answer's token log-probabilities give its probability; the step's prompt
            # asks for exactly one of the choices.
            kwargs["logprobs"] = True
        elif request.output_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.output_schema},
            }
        if request.tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        try:
            completion = await self._client.chat.completions.create(**kwargs)
        except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as e:
            raise TransientModelError(str(e), model=model, retry_after=_retry_after(e)) from e
        except openai.APIStatusError as e:
            if e.status_code in (408, 409, 429) or e.status_code >= 500:
                raise TransientModelError(str(e), model=model, retry_after=_retry_after(e)) from e
            raise ModelCallError(f"HTTP {e.status_code}: {e.message}", model=model) from e
        choice = completion.choices[0]
        tool_calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in (choice.message.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        usage = completion.usage
        response = ModelResponse(
            text=choice.message.content,
            tool_calls=tool_calls,
            usage=Usage(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
            ),
            finish_reason=_finish(choice.finish_reason),
            model=completion.model or model,
        )
        if request.choices:
            _read_choice(response, request.choices, choice)
        return response

    async def aclose(self) -> None:
        await self._client.close()


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def _read_choice(response: ModelResponse, choices: list[str], choice: Any) -> None:
    """Match the answer to a choice and give it the probability of its tokens. Choices the
    model did not answer stay unscored: one sampled answer does not say how likely they are."""
    answer = (response.text or "").strip().strip(".\"'").casefold()
    matched = next((c for c in choices if c.casefold() == answer), None)
    if matched is None:
        return
    response.text = matched
    tokens = getattr(getattr(choice, "logprobs", None), "content", None) or []
    if tokens:
        response.choice_probs = {matched: math.exp(sum(t.logprob for t in tokens))}


def _finish(reason: str | None) -> Any:
    return {"length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}.get(
        reason or "stop", "stop"
    )


def _retry_after(error: openai.APIError) -> float | None:
    """Seconds the server asked us to wait (Retry-After or retry-after-ms), if any."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None
