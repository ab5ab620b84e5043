"""The one small interface every model provider implements.

A provider client turns a `ModelRequest` (messages, an optional output schema, optional
tools, sampling) into a `ModelResponse` (text or tool calls, plus usage). It knows nothing
of steps, runs, budgets or retries: the gateway wraps every client with those.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True)
class ToolCall:
    """A tool the model asks to call."""

    id: str
    """Call id, unique within a conversation; the tool's result refers to it."""
    name: str
    """The tool's name."""
    arguments: str
    """The arguments, as a JSON object text."""


@dataclass(slots=True)
class Message:
    """One chat message."""

    role: Role
    """Who speaks: system, user, assistant, or a tool's result."""
    content: str | None = None
    """The text; None for an assistant turn that only calls tools."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Tools an assistant turn called."""
    tool_call_id: str | None = None
    """For a tool message: the call it answers."""


@dataclass(slots=True)
class ToolSpec:
    """A tool offered to the model."""

    name: str
    """The name the model calls it by."""
    description: str
    """What it does, for the model."""
    parameters: dict[str, Any]
    """JSON schema of its arguments (an object)."""


@dataclass(slots=True, kw_only=True)
class Sampling:
    """Sampling parameters. The defaults are deterministic."""

    temperature: float = 0.0
    """0 is greedy and reproducible."""
    max_tokens: int = 512
    """Cap on generated tokens; size it for the output schema."""
    top_p: float | None = None
    """Nucleus sampling, where the provider supports it."""
    seed: int | None = None
    """A fixed seed, where the provider supports it."""
    stop: list[str] | None = None
    """Stop sequences."""


@dataclass(slots=True, kw_only=True)
class ModelRequest:
    """What a step asks a model."""

    messages: list[Message]
    """The conversation, system message first when there is one."""
    output_schema: dict[str, Any] | None = None
    """JSON schema (an object) the answer must match; None for free text."""
    schema_name: str = "output"
    """A name for the schema (providers that take one show it to the model)."""
    tools: list[ToolSpec] = field(default_factory=list)
    """Tools the model may call instead of answering."""
    sampling: Sampling = field(default_factory=Sampling)
    """Sampling parameters."""
    choices: list[str] | None = None
    """A closed set of answers to score instead of generating freely: the response's text
    is the most likely choice and `choice_probs` holds each choice's probability, for
    providers that expose token log-probabilities (others answer with text only)."""


FinishReason = Literal["stop", "length", "tool_calls", "error"]


@dataclass(slots=True, kw_only=True)
class Usage:
    """Tokens a call consumed, as the provider counted them."""

    input_tokens: int = 0
    """Prompt tokens."""
    output_tokens: int = 0
    """Generated tokens."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, kw_only=True)
class ModelResponse:
    """What a model answered."""

    text: str | None = None
    """The answer text (JSON text when the request had an output schema)."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Tools the model called instead of answering."""
    usage: Usage = field(default_factory=Usage)
    """Tokens consumed."""
    finish_reason: FinishReason = "stop"
    """Why generation ended; `length` means the output was cut off."""
    model: str = ""
    """The model that answered, as the provider names it."""
    choice_probs: dict[str, float] | None = None
    """For a request with `choices`: choice probabilities from the model's token
    log-probabilities, where the provider gives them. The embedded model scores every
    choice (they sum to 1); a hosted model scores only the choice it answered."""
    headroom: float | None = None
    """The smaller share of the provider's request and token rate limits left after this
    call, from its rate-limit headers (None: it sent none). The gateway backs off when it
    runs low."""


class ModelClient(abc.ABC):
    """A provider's implementation of one model call. Subclass it for a new provider."""

    provider: str = "unknown"
    """Key for per-provider limits and records, e.g. `local`, `openai`, a host name."""
    endpoint: str | None = None
    """Where the provider is, for messages: a URL without credentials (None: `provider`)."""

    @abc.abstractmethod
    async def complete(self, model: str, request: ModelRequest) -> ModelResponse:
        """Run one request on `model`. Raise `TransientModelError` for retryable failures."""

    def count_tokens(self, text: str) -> int:
        """Estimate the tokens of `text` (for rate limits before a call). ~4 chars a token."""
        return len(text) // 4 + 1

    async def aclose(self) -> None:
        """Release connections or memory. The default does nothing."""
        return None
