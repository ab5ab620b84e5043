"""The record of one model call, and the scope a call is made in (who receives the record)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from .budget import Budget
from .client import ModelRequest, ModelResponse
from .pricing import ZERO


@dataclass(slots=True, kw_only=True)
class ModelCall:
    """The record of one model call, as the gateway measured it."""

    id: str
    """Unique id of the call."""
    model: str
    """The model name as resolved, e.g. `local` or `openai:gpt-4.1-mini`."""
    provider: str
    """The provider key (limits are per provider)."""
    request: ModelRequest
    """What was asked."""
    response: ModelResponse | None
    """What came back; None when the call failed."""
    started_at: float
    """Wall-clock start, seconds since the epoch."""
    latency_s: float
    """Seconds from the first attempt getting its slot to the end (queueing for a slot is
    not counted; retries and their waits are)."""
    attempts: int
    """Attempts made (1 when the first succeeded; 0 for a cache hit)."""
    error: str | None = None
    """Why the call failed, when it did."""
    cost: Decimal | None = ZERO
    """Dollars; None when the model's price is unknown."""
    cached: bool = False
    """Answered from the response cache (free, no provider call)."""


class CallObserver(Protocol):
    """The scope a call is made in (a run context implements this): the budgets the call
    must fit, and who receives its record."""

    @property
    def budgets(self) -> Sequence[Budget]: ...

    def on_model_call(self, call: ModelCall) -> None: ...
