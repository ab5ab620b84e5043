"""Forecasts: what a workflow will cost on N inputs, learned from a run on a sample.

From the model calls of a recorded run it learns, per item, how many calls each step makes
(branch frequencies: spam skips the reply) and how many tokens they take; it then prices N
items on each target model. The range is the 95 % interval of the per-item mean (mean ± 2
standard errors) times N. Token counts come from the sample's model; when the store holds
calls of a target model for the same steps, those are used for that model instead ("the table
says which"): an offline tokenizer for hosted models is not available here.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ..models.client import Usage
from ..models.pricing import Pricing


@dataclass(frozen=True, slots=True)
class StepProfile:
    """What one step costs per item, on average, in the sample."""

    path: str
    calls_per_item: float
    """Calls per item (below 1 for a branch some items skip)."""
    input_tokens: float
    """Mean input tokens per call."""
    output_tokens: float
    """Mean output tokens per call."""


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-item token use learned from a sample run."""

    items: int
    """Items in the sample."""
    steps: tuple[StepProfile, ...]
    per_item_input: tuple[int, ...]
    """Each sample item's input tokens (all its calls)."""
    per_item_output: tuple[int, ...]

    @property
    def mean_input(self) -> float:
        return sum(self.per_item_input) / self.items if self.items else 0.0

    @property
    def mean_output(self) -> float:
        return sum(self.per_item_output) / self.items if self.items else 0.0

    def bounds(self, n: int) -> tuple[tuple[float, float], tuple[float, float]]:
        """(low, high) totals of input and of output tokens for n items."""
        return _interval(self.per_item_input, n), _interval(self.per_item_output, n)


def learn(calls: Iterable[sqlite3.Row], items: int) -> Profile:
    """A profile from a run's model calls (cache hits count with their original tokens:
    the forecast is of work, not of what this machine happened to have cached)."""
    by_step: dict[str, list[tuple[int, int]]] = defaultdict(list)
    by_item: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in calls:
        tokens = (c["input_tokens"] or 0, c["output_tokens"] or 0)
        by_step[c["step_path"]].append(tokens)
        totals = by_item[c["item_id"]]
        totals[0] += tokens[0]
        totals[1] += tokens[1]
    steps = tuple(
        StepProfile(
            path=path,
            calls_per_item=len(rows) / items,
            input_tokens=sum(r[0] for r in rows) / len(rows),
            output_tokens=sum(r[1] for r in rows) / len(rows),
        )
        for path, rows in sorted(by_step.items())
    )
    # Items with no model call at all (e.g. unreadable inputs) count as zero.
    zeros = [[0, 0]] * max(0, items - len(by_item))
    per_item = [*by_item.values(), *zeros]
    return Profile(
        items=items,
        steps=steps,
        per_item_input=tuple(t[0] for t in per_item),
        per_item_output=tuple(t[1] for t in per_item),
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    """A forecast for one model."""

    model: str
    n: int
    input_tokens: float
    output_tokens: float
    cost: Decimal | None
    cost_low: Decimal | None
    cost_high: Decimal | None
    basis: str
    """Where the token counts come from."""


def estimate(
    profile: Profile,
    n: int,
    models: Sequence[str],
    pricing: Pricing,
    *,
    sample_model: str,
    recorded: dict[str, Profile] | None = None,
) -> list[Estimate]:
    """Price `n` items on each of `models`."""
    out = []
    for model in models:
        used = (recorded or {}).get(model)
        basis = (
            f"recorded on {model} ({used.items} items)"
            if used is not None
            else f"counted by {sample_model} on {profile.items} sample items"
        )
        p = used or profile
        (in_lo, in_hi), (out_lo, out_hi) = p.bounds(n)

        def price(i: float, o: float, model: str = model) -> Decimal | None:
            return pricing.cost_of(model, Usage(input_tokens=round(i), output_tokens=round(o)))

        out.append(
            Estimate(
                model=model,
                n=n,
                input_tokens=p.mean_input * n,
                output_tokens=p.mean_output * n,
                cost=price(p.mean_input * n, p.mean_output * n),
                cost_low=price(in_lo, out_lo),
                cost_high=price(in_hi, out_hi),
                basis=basis,
            )
        )
    return out


def _interval(values: Sequence[int], n: int) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean * n, mean * n
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    error = 2 * math.sqrt(variance / len(values))
    return max(0.0, mean - error) * n, (mean + error) * n
