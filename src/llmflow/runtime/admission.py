"""Budgets spent on whole items: an item starts only if what it is expected to use fits in
what the run's budget has left.

Without this, a budget worth 50 items at 100 in flight starts 100 items, pays for half of
each and finishes a dozen. The first item runs alone (a probe); from then on an item starts
only when every item in flight and this one, each at the most an item has used so far, fit
in the rest of the budget. When not even one more fits, the run stops and says how many
items were left and what finishing them would take. The gateway still enforces the budget
call by call, so an item that uses more than any before it cannot overspend.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import BudgetExceededError, ConfigError
from ..models.budget import ZERO, Budget
from ..models.client import Usage

if TYPE_CHECKING:
    from ..models.gateway import Gateway


@dataclass(slots=True)
class Use:
    """What one item used: dollars, tokens, requests."""

    cost: Decimal = ZERO
    tokens: int = 0
    requests: int = 0


@dataclass
class Admission:
    """Admits items against a run's budget (see the module's docstring)."""

    budget: Budget
    in_flight: dict[int, Budget] = field(default_factory=dict)
    """Per item in flight, an unlimited meter of what it has used so far."""
    most: Use | None = None
    """The most any finished item used, per dimension; None before the first finishes."""
    ran: set[int] = field(default_factory=set)
    """Items in flight that run here (a resumed run's finished items only replay)."""
    replays: set[int] = field(default_factory=set)
    """Items a resumed run finished before: they replay their records, spending nothing."""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def meter(self, index: int) -> Budget:
        """The meter item `index` runs with (one of its context's budgets)."""
        self.ran.add(index)
        return self.in_flight.setdefault(index, Budget(scope="item"))

    async def admit(self, index: int) -> bool:
        """Wait until item `index` may start; False when the rest of the budget cannot hold
        one more item (nothing in flight, and one item's use does not fit)."""
        if index in self.replays:
            return True
        async with self.changed:
            while True:
                if self.most is None:  # the probe: one item alone, until one has finished
                    admitted = not self.in_flight
                elif self._fits(len(self.in_flight) + 1):
                    admitted = True
                elif not self.in_flight:
                    return False
                else:
                    admitted = False
                if admitted:  # its place is taken now, before it starts
                    self.in_flight[index] = Budget(scope="item")
                    return True
                await self.changed.wait()

    async def done(self, index: int) -> None:
        """Item `index` ended: learn from what it used."""
        async with self.changed:
            meter = self.in_flight.pop(index, None)
            if meter is not None and index in self.ran:
                self.ran.discard(index)
                used = Use(meter.spent_cost, meter.spent_tokens, meter.requests)
                most = self.most or Use()
                self.most = Use(
                    max(most.cost, used.cost),
                    max(most.tokens, used.tokens),
                    max(most.requests, used.requests),
                )
            self.changed.notify_all()

    def _fits(self, items: int) -> bool:
        """Whether `items` items (those in flight and one more) fit at the most used."""
        assert self.most is not None
        b, most = self.budget, self.most
        used_in_flight = Use()
        for meter in self.in_flight.values():
            used_in_flight.cost += meter.spent_cost
            used_in_flight.tokens += meter.spent_tokens
            used_in_flight.requests += meter.requests
        # The last call to settle needs its worst case free, beyond what it then costs.
        if b.max_cost is not None and (
            b.spent_cost - used_in_flight.cost + most.cost * items + b.overhang_cost > b.max_cost
        ):
            return False
        if b.max_tokens is not None and (
            b.spent_tokens - used_in_flight.tokens + most.tokens * items + b.overhang_tokens
            > b.max_tokens
        ):
            return False
        return not (
            b.max_requests is not None
            and b.requests - used_in_flight.requests + most.requests * items > b.max_requests
        )

    def refusal(self, left: int) -> BudgetExceededError:
        """Why the run stops with `left` items not started, and what finishing them needs."""
        b, most = self.budget, self.most or Use()
        needs = []
        if b.max_cost is not None:
            more = b.spent_cost + most.cost * left + b.overhang_cost
            needs.append(f"{b.flags['cost']} {more:.4f} (${b.spent_cost:.4f} spent)")
        if b.max_tokens is not None:
            more_tokens = b.spent_tokens + most.tokens * left + b.overhang_tokens
            needs.append(f"{b.flags['tokens']} {more_tokens}")
        if b.max_requests is not None:
            needs.append(f"{b.flags['requests']} {b.requests + most.requests * left}")
        return BudgetExceededError(
            f"the run's budget is spent on whole items: {left} items were not started, as "
            f"one more would not fit (an item has used up to ${most.cost:.4f}, "
            f"{most.tokens:,} tokens, {most.requests} requests); finishing them needs about "
            f"{', '.join(needs)}: results so far are kept",
            budget="cost" if b.max_cost is not None else "tokens" if b.max_tokens else "requests",
            scope="run",
        )


def resumed(budget: Budget, calls: Iterable[Any], replays: set[int], gateway: Gateway) -> Admission:
    """The admission of a resumed run, from the model calls it recorded before (rows of
    `Store.rows("model_calls")`): the most an item used, and what a call reserved beyond its
    cost (its prompt's max_tokens, priced on its model), so that the run's next item starts
    only if it can finish; `replays`: items that finished before."""
    per_item: dict[str, Use] = {}
    for call in calls:
        if call["cached"] or call["status"] != "ok" or call["item_id"] is None:
            continue
        tokens_in, tokens_out = call["input_tokens"] or 0, call["output_tokens"] or 0
        use = per_item.setdefault(call["item_id"], Use())
        use.cost += Decimal(call["cost"] or 0)
        use.tokens += tokens_in + tokens_out
        use.requests += 1
        try:
            asked = int(json.loads(call["prompt"])["sampling"]["max_tokens"])
            client, model_id = gateway.resolve(call["model"])
        except (ValueError, KeyError, TypeError, ConfigError):
            continue
        worst = Usage(input_tokens=tokens_in, output_tokens=asked)
        cost = gateway.pricing.cost(client.provider, model_id, worst, 0.0)
        budget.overhang_tokens = max(budget.overhang_tokens, asked - tokens_out)
        if cost is not None:
            budget.overhang_cost = max(budget.overhang_cost, cost - Decimal(call["cost"] or 0))
    most = None
    if per_item:
        uses = per_item.values()
        most = Use(max(u.cost for u in uses), max(u.tokens for u in uses),
                   max(u.requests for u in uses))  # fmt: skip
    return Admission(budget, most=most, replays=replays)
