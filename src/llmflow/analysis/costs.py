"""Cost reports from the run store: totals of a run, and costs grouped by a dimension."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from ..models.client import Usage
from ..models.pricing import ZERO, Pricing


@dataclass(kw_only=True)
class CostSummary:
    """What a set of model calls cost."""

    calls: int = 0
    """Model calls, cache hits included."""
    cached: int = 0
    """Calls answered from the response cache (free)."""
    input_tokens: int = 0
    """Tokens the model processed (cache hits excluded), likewise `output_tokens`."""
    output_tokens: int = 0
    cost: Decimal | None = ZERO
    """Dollars; None when any call's price is unknown."""
    unknown: set[str] = field(default_factory=set)
    """Models whose price is unknown."""

    def add(self, row: sqlite3.Row) -> None:
        self.calls += 1
        self.cached += int(row["cached"])
        if row["cached"]:  # a cache hit processes no tokens and costs nothing
            return
        self.input_tokens += row["input_tokens"] or 0
        self.output_tokens += row["output_tokens"] or 0
        if row["cost"] is None:
            self.unknown.add(row["model"])
            self.cost = None
        elif self.cost is not None:
            self.cost += Decimal(row["cost"])

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def hit_rate(self) -> float:
        return self.cached / self.calls if self.calls else 0.0

    def on(self, pricing: Pricing, model: str) -> Decimal | None:
        """What the same tokens would cost on `model`, e.g. `openai:gpt-4.1-mini` (an
        estimate: other models' tokenizers count a little differently)."""
        usage = Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)
        return pricing.cost_of(model, usage)


def summarise(rows: Iterable[sqlite3.Row]) -> CostSummary:
    summary = CostSummary()
    for row in rows:
        summary.add(row)
    return summary


def group(rows: Iterable[sqlite3.Row], by: str) -> dict[str, CostSummary]:
    """Summaries keyed by `by`: workflow, step (path), model, run or day."""
    column = {"step": "step_path", "run": "run_id"}.get(by, by)
    groups: dict[str, CostSummary] = {}
    for row in rows:
        groups.setdefault(str(row[column]), CostSummary()).add(row)
    return groups
