"""Budgets: money, tokens and requests a run may spend, enforced before each call.

Before a call the gateway reserves its worst case (the prompt's tokens plus `max_tokens`, at
the model's price); after it, the reservation is settled at the actual cost. Reserving is
synchronous (no await between the check and the booking), so concurrent calls cannot
overbook: a budget is never exceeded by more than the gap between one call's estimate and its
actual usage. A call refused only because calls in flight hold their worst case waits for them
to settle (`waits`, `settled`) instead of failing: it fails when the budget cannot hold it
even with nothing in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import BudgetExceededError

ZERO = Decimal(0)


@dataclass(slots=True)
class Reservation:
    cost: Decimal
    tokens: int


@dataclass(kw_only=True)
class Budget:
    """Limits for a run (or a batch). None means unlimited."""

    max_cost: Decimal | None = None
    """Dollars."""
    max_tokens: int | None = None
    """Input plus output tokens."""
    max_requests: int | None = None
    """Model calls (cache hits are free and do not count)."""
    scope: str = "run"
    """What the budget covers, for messages: `run`, `item`..."""
    flags: dict[str, str] = field(
        default_factory=lambda: {
            "cost": "--max-cost",
            "tokens": "--max-tokens",
            "requests": "--max-requests",
        }
    )
    """How the user raises each limit, for messages."""

    spent_cost: Decimal = ZERO
    spent_tokens: int = 0
    requests: int = 0
    overhang_cost: Decimal = ZERO
    """The most a call has reserved beyond what it then cost: what the last call of an item
    needs free on top of its cost (items are admitted with it, `runtime.admission`)."""
    overhang_tokens: int = 0
    _held_cost: Decimal = ZERO
    _held_tokens: int = 0
    _waiting: dict[asyncio.AbstractEventLoop, asyncio.Event] = field(default_factory=dict)
    """Per event loop (a durable run's recovered items run on DBOS's), calls waiting to book."""

    def reserve(self, cost: Decimal | None, tokens: int) -> Reservation:
        """Book a call's worst case, or raise `BudgetExceededError` naming the limit."""
        if self.max_requests is not None and self.requests + 1 > self.max_requests:
            self._refuse("requests", f"{self.max_requests} requests", f"{self.requests} made")
        if self.max_tokens is not None and (
            self.spent_tokens + self._held_tokens + tokens > self.max_tokens
        ):
            self._refuse(
                "tokens",
                f"{self.max_tokens:,} tokens",
                f"{self.spent_tokens:,} spent, {self._held_tokens:,} held, this call up to "
                f"{tokens:,}",
            )
        if self.max_cost is not None:
            if cost is None:
                raise BudgetExceededError(
                    f"the {self.scope} has a money budget but this model's price is unknown: "
                    "set a price (LLMFLOW_LOCAL_PRICE_PER_MTOK for self-hosted models), or "
                    f"drop {self.flags['cost']}",
                    budget="cost",
                    scope=self.scope,
                )
            if self.spent_cost + self._held_cost + cost > self.max_cost:
                self._refuse(
                    "cost",
                    f"${self.max_cost}",
                    f"${self.spent_cost:.6f} spent, ${self._held_cost:.6f} held, this call up "
                    f"to ${cost:.6f}",
                )
        self.requests += 1
        held = Reservation(cost=cost or ZERO, tokens=tokens)
        self._held_cost += held.cost
        self._held_tokens += held.tokens
        return held

    def fits(self, cost: Decimal | None, tokens: int) -> bool:
        """Whether `reserve` would book this call now."""
        if self.max_requests is not None and self.requests + 1 > self.max_requests:
            return False
        held_tokens = self.spent_tokens + self._held_tokens + tokens
        if self.max_tokens is not None and held_tokens > self.max_tokens:
            return False
        return not (
            self.max_cost is not None
            and (cost is None or self.spent_cost + self._held_cost + cost > self.max_cost)
        )

    def waits(self, cost: Decimal | None, tokens: int) -> bool:
        """Whether a call refused by `reserve` would fit once the calls in flight settle."""
        if not (self._held_cost or self._held_tokens):
            return False
        if self.max_requests is not None and self.requests + 1 > self.max_requests:
            return False
        if self.max_tokens is not None and self.spent_tokens + tokens > self.max_tokens:
            return False
        return not (
            self.max_cost is not None and (cost is None or self.spent_cost + cost > self.max_cost)
        )

    async def settled(self) -> None:
        """Wait until a call in flight settles or releases its reservation."""
        await self._waiting.setdefault(asyncio.get_running_loop(), asyncio.Event()).wait()

    def release(self, held: Reservation) -> None:
        """Cancel a reservation whose call never ran."""
        self.requests -= 1
        self._held_cost -= held.cost
        self._held_tokens -= held.tokens
        self._notify()

    def settle(self, held: Reservation, cost: Decimal | None, tokens: int) -> None:
        """Replace a reservation by what the call actually used."""
        self._held_cost -= held.cost
        self._held_tokens -= held.tokens
        self.spent_cost += cost if cost is not None else ZERO
        self.spent_tokens += tokens
        self.overhang_cost = max(self.overhang_cost, held.cost - (cost or ZERO))
        self.overhang_tokens = max(self.overhang_tokens, held.tokens - tokens)
        self._notify()

    def _notify(self) -> None:
        waiting, self._waiting = self._waiting, {}
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, event in waiting.items():
            if loop is here:
                event.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def _refuse(self, kind: str, limit: str, state: str) -> None:
        raise BudgetExceededError(
            f"the {self.scope}'s budget of {limit} would be exceeded ({state}): results so far "
            f"are kept; raise the limit with {self.flags[kind]}",
            budget=kind,
            scope=self.scope,
        )
