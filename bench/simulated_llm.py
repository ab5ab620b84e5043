"""A simulated strong LLM for the cascade and distillation benchmarks (labelled "simulated"
wherever its figures appear).

It answers an LLM classifier's request (`request.choices` set) with the gold label with
probability 0.9, else a uniformly random wrong label. The draw is seeded by the text, so the
same text always gets the same answer, whatever the order or concurrency of the calls: a
benchmark can ask "what would the LLM have said" about items it never sent.

It is priced like a hosted model: the client says it is the `openai` provider, so the gateway
prices its token usage (prompt characters / 4, answer characters / 4) with genai-prices'
gpt-4.1-mini price, and it waits `latency_s` per call, like a network round trip.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from llmflow import Settings
from llmflow.models.client import ModelRequest, ModelResponse, Usage
from llmflow.models.gateway import Gateway, ProviderLimits
from llmflow.testing import ScriptedModel

PRICED_AS = "openai:gpt-4.1-mini"
"""The model name the simulated LLM is served (and priced) as."""
ACCURACY = 0.9
LATENCY_S = 0.4


class SimulatedLLM(ScriptedModel):
    """Gold w.p. `accuracy`, else a random wrong label; priced as a hosted OpenAI model."""

    provider = "openai"  # so the gateway prices its usage like gpt-4.1-mini

    def __init__(
        self,
        gold: Mapping[str, str],
        *,
        accuracy: float = ACCURACY,
        latency_s: float = LATENCY_S,
        seed: int = 0,
    ) -> None:
        super().__init__(self._reply, latency_s=latency_s)
        self.gold = dict(gold)
        self.accuracy = accuracy
        self.seed = seed

    def answer(self, text: str, choices: list[str]) -> str:
        """What the simulated LLM says about `text` (the same every time)."""
        if text not in self.gold:
            raise KeyError(f"the simulated LLM knows no gold label for {text[:60]!r}")
        truth = self.gold[text]
        rng = random.Random(f"{self.seed}:{text}")  # str seeds hash with SHA-512: stable
        if rng.random() < self.accuracy:
            return truth
        return rng.choice([c for c in choices if c != truth])

    def _reply(self, request: ModelRequest) -> ModelResponse:
        if not request.choices:
            raise ValueError("the simulated LLM answers classifier requests (with choices) only")
        text = request.messages[-1].content or ""
        label = self.answer(text, request.choices)
        prompt = sum(len(m.content or "") for m in request.messages)
        return ModelResponse(
            text=label,
            choice_probs={label: self.accuracy},
            usage=Usage(input_tokens=prompt // 4 + 1, output_tokens=len(label) // 4 + 1),
            model=PRICED_AS,
        )


def simulated_gateway(llm: SimulatedLLM, settings: Settings | None = None) -> Gateway:
    """A gateway serving `llm` as `openai:gpt-4.1-mini`, many calls in flight at once."""
    settings = (settings or Settings()).model_copy(update={"model": PRICED_AS})
    gateway = Gateway(
        settings,
        limits={"openai": ProviderLimits(max_concurrency=500, max_retries=0)},
        backoff=lambda _retry: 0.0,
    )
    gateway.register("openai", llm)
    return gateway
