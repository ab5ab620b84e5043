"""What a model call costs, in US dollars, as `Decimal` — or None when the price is unknown.

Hosted models are priced from the `genai-prices` package (input, cached input and output
tokens). The embedded model and self-hosted endpoints cost $0 unless a price per million
tokens or per hour of compute is configured. A model with no known price is `None`: shown as
unknown, never as $0, never a crash.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING

from .client import Usage

if TYPE_CHECKING:  # genai-prices loads its price data on import: only when a price is looked up
    from genai_prices.types import ModelPrice

    from ..settings import Settings

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)
HOUR = Decimal(3600)
SELF_HOSTED = frozenset({"local", "scripted"})
"""Providers that run on the user's own hardware (endpoints at OPENAI_BASE_URL count too,
unless genai-prices knows their host)."""


@lru_cache(maxsize=256)
def _hosted_price(provider: str, model_id: str, base_url: str | None) -> ModelPrice | None:
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    try:
        if provider == "openai":
            found = calc_price(PriceUsage(input_tokens=0), model_ref=model_id, provider_id="openai")
        else:
            found = calc_price(
                PriceUsage(input_tokens=0), model_ref=model_id, provider_api_url=base_url
            )
    except LookupError:
        return None
    return found.model_price


class Pricing:
    """Prices calls from the provider key and model id the gateway resolved."""

    def __init__(self, settings: Settings) -> None:
        self.per_mtok = settings.local_price_per_mtok
        self.per_hour = settings.local_price_per_hour
        self.base_url = settings.base_url

    def is_known(self, provider: str, model_id: str) -> bool:
        return self.cost(provider, model_id, Usage(), 0.0) is not None

    def cost(self, provider: str, model_id: str, usage: Usage, latency_s: float) -> Decimal | None:
        """The cost of one call: `usage` tokens, `latency_s` seconds of compute."""
        if provider in SELF_HOSTED or (provider != "openai" and not self._priced_host(model_id)):
            return self._self_hosted(usage, latency_s)
        price = _hosted_price(provider, model_id, self.base_url)
        if price is None:
            return None
        from genai_prices import Usage as PriceUsage

        total = price.calc_price(
            PriceUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        )["total_price"]
        return Decimal(total)

    def cost_of(self, model: str, usage: Usage) -> Decimal | None:
        """Price `usage` on a model named as users name them (`openai:gpt-4.1-mini`, `local`,
        `local:qwen2.5-coder-1.5b`), without a client or a key."""
        provider, _, model_id = model.partition(":")
        if model == "local" or provider == "local":  # `local:<name-or-path>` runs here too
            return self._self_hosted(usage, 0.0)
        if provider == "openai" and model_id:
            return self.cost("openai", model_id, usage, 0.0)
        return None

    def hosted_yet_free(self, provider: str, model_id: str) -> bool:
        """A model priced $0 as self-hosted (served at a base URL, no local price set) whose
        name is a hosted model's, e.g. `gpt-4.1-mini` behind `--base-url`: a money budget on
        it would never stop anything, so budgets refuse it."""
        if provider in SELF_HOSTED or provider == "openai":
            return False
        if self.per_mtok is not None or self.per_hour is not None:
            return False
        if self.cost(provider, model_id, Usage(input_tokens=1_000_000), 0.0) != ZERO:
            return False
        return _hosted_price("openai", model_id, None) is not None

    def _priced_host(self, model_id: str) -> bool:
        return _hosted_price("compatible", model_id, self.base_url) is not None

    def _self_hosted(self, usage: Usage, latency_s: float) -> Decimal:
        cost = ZERO
        if self.per_mtok is not None:
            cost += self.per_mtok * Decimal(usage.total_tokens) / MILLION
        if self.per_hour is not None:
            cost += self.per_hour * Decimal(str(round(latency_s, 6))) / HOUR
        return cost


def format_cost(cost: Decimal | None) -> str:
    """$0.0123 under a dollar, $1,234.57 from a dollar up, `unknown` for None."""
    if cost is None:
        return "unknown"
    return f"${cost:,.4f}" if cost < 1 else f"${cost:,.2f}"
