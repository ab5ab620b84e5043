"""OpenAI and every OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server), via `openai`.

The `openai` client's own retries are off: the gateway owns retries, so that limits,
Retry-After and records see every attempt. Every failure a retry may cure raises
`TransientModelError`: rate limits, timeouts, 5xx, connection errors and resets, and answers
that are not a chat completion (a malformed or truncated JSON body, an HTML page or another
content type with status 200). Failures that say the provider is unusable as configured
(connection refused, 401/403/404) carry a `ProviderFault` for the gateway's circuit breaker.
Error messages name the endpoint, with credentials removed, and never hold the key.
"""

from __future__ import annotations

import math
from typing import Any

import openai

from ..errors import ModelCallError, ProviderFault, TransientModelError
from ..redact import redact, redact_url, register_secret, register_url
from .client import Message, ModelClient, ModelRequest, ModelResponse, ToolCall, Usage

OPENAI_URL = "https://api.openai.com/v1"


class OpenAIClient(ModelClient):
    """Chat Completions on OpenAI or a compatible server."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        http_client: Any = None,
    ) -> None:
        register_secret(api_key)
        register_url(base_url)
        self.endpoint = redact_url(base_url) if base_url else OPENAI_URL
        self.provider = _host(base_url) if base_url else "openai"
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
            raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
            completion = raw.parse()
        except openai.APIConnectionError as e:  # timeouts, refused, reset, truncated bodies
            raise self._connection_error(e, model) from e
        except openai.APIStatusError as e:
            raise self._status_error(e, model) from e
        except (openai.APIResponseValidationError, ValueError) as e:  # JSONDecodeError, too
            raise TransientModelError(
                f"{self.endpoint} answered with a malformed body ({_brief(e)})", model=model
            ) from e
        try:
            choice = completion.choices[0]
            message = choice.message
            if message.content is not None and not isinstance(message.content, str):
                raise TypeError("content is not text")
            usage = completion.usage
            response = ModelResponse(
                text=message.content,
                tool_calls=[
                    ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                    for c in (message.tool_calls or [])
                    if getattr(c, "function", None) is not None
                ],
                usage=Usage(
                    input_tokens=usage.prompt_tokens if usage else 0,
                    output_tokens=usage.completion_tokens if usage else 0,
                ),
                finish_reason=_finish(choice.finish_reason),
                model=completion.model or model,
            )
        except (AttributeError, IndexError, KeyError, TypeError) as e:
            raise TransientModelError(
                f"{self.endpoint} answered with {_what(completion)}, not a chat completion",
                model=model,
            ) from e
        if request.choices:
            _read_choice(response, request.choices, choice)
        response.headroom = _headroom(raw.headers)
        return response

    async def aclose(self) -> None:
        await self._client.close()

    def _connection_error(self, e: openai.APIConnectionError, model: str) -> TransientModelError:
        if isinstance(e, openai.APITimeoutError):
            return TransientModelError(f"{self.endpoint}: no answer in time", model=model)
        cause = _root_cause(e)
        what = _brief(cause) if cause is not e else "connection error"
        if not _connect_failed(e):  # reset, or a body cut off: the next attempt may get through
            return TransientModelError(f"the connection to {self.endpoint} broke: {what}",
                                       model=model)  # fmt: skip
        fault = ProviderFault(
            what=f"cannot connect ({what})",
            fix="start the server, or correct --base-url / OPENAI_BASE_URL",
        )
        return TransientModelError(f"cannot connect to {self.endpoint}: {what}", model=model,
                                   fault=fault)  # fmt: skip

    def _status_error(self, e: openai.APIStatusError, model: str) -> ModelCallError:
        status = e.status_code
        said = e.message.removeprefix(f"Error code: {status} - ")
        message = redact(f"{self.endpoint} answered HTTP {status}: {said}")
        code = _error_code(e)
        if status == 429 and code == "insufficient_quota":
            fault = ProviderFault(
                what="HTTP 429 insufficient_quota (the account has no credit left)",
                fix="add credit to the account, or use another key (OPENAI_API_KEY)",
            )
            return ModelCallError(message, model=model, fault=fault)
        if status in (408, 409, 425, 429) or status >= 500:
            return TransientModelError(
                message, model=model, retry_after=_retry_after(e), rate_limited=status == 429
            )
        return ModelCallError(message, model=model, fault=_FAULTS.get(status))


_FAULTS = {
    401: ProviderFault(
        what="HTTP 401 (the key was refused)",
        fix="set OPENAI_API_KEY (or the credentials in the base URL) to a valid key",
    ),
    403: ProviderFault(
        what="HTTP 403 (access denied)",
        fix="check that the key may use this endpoint and model",
    ),
    404: ProviderFault(
        what="HTTP 404 (not found)",
        fix="check the base URL (an OpenAI-compatible one usually ends in /v1) and the model "
        "name (`llmflow doctor` checks both)",
    ),
}
"""HTTP statuses that say the provider is unusable as configured, whatever is asked."""


def _host(url: str) -> str:
    """`host:port` of a URL, without credentials: the provider key of limits and records."""
    shown = redact_url(url)
    return shown.split("://", 1)[-1].split("/", 1)[0]


def _brief(error: BaseException | str, limit: int = 200) -> str:
    """An error as one short line, without credentials."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return redact(text)


def _what(body: Any) -> str:
    """What a server sent instead of a chat completion, briefly."""
    if isinstance(body, str):
        kind = "an HTML page" if "<html" in body[:500].lower() else "text"
        return f"{kind} ({_brief(body, 80)!r})"
    error = getattr(body, "error", None) or (getattr(body, "model_extra", None) or {}).get("error")
    if error:
        return (
            f"an error ({_brief(error if isinstance(error, BaseException) else str(error), 120)})"
        )
    return f"a {type(body).__name__} without choices"


def _root_cause(error: BaseException) -> BaseException:
    seen = error
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        assert nxt is not None
        seen = nxt
    return seen


def _connect_failed(error: BaseException) -> bool:
    """Whether the connection could not be made at all (refused, unknown host), as opposed
    to one that broke or timed out."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or type(seen).__name__ == "ConnectError":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _error_code(error: openai.APIStatusError) -> str | None:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return str(inner["code"])
    return None


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


def _headroom(headers: Any) -> float | None:
    """The smaller share left of the request and token limits, from OpenAI-style rate-limit
    headers (`x-ratelimit-remaining-requests` / `-limit-requests`, the same for tokens)."""
    shares = []
    for kind in ("requests", "tokens"):
        try:
            limit = float(headers.get(f"x-ratelimit-limit-{kind}") or 0)
            left = float(headers.get(f"x-ratelimit-remaining-{kind}") or "nan")
        except (TypeError, ValueError):
            continue
        if limit > 0 and left == left:
            shares.append(max(0.0, left) / limit)
    return min(shares) if shares else None


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
