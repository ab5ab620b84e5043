"""The LLM tier of a classifier: a label from a closed set, with a confidence.

The confidence comes from the model's token log-probabilities over the label set where the
provider gives them (the embedded llama.cpp model scores every label exactly; OpenAI-compatible
servers give the answered label's probability). Where it does not, the step falls back to
self-consistency: `votes` sampled answers, and the share that agrees with the majority.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DefinitionError
from ..models.client import Message, ModelRequest, ModelResponse, Sampling
from .base import Step
from .context import RunContext
from .label import Label
from .prompt import PromptTemplate, read_instructions


class LLMClassifier(Step[Any, Label]):
    """An llm step that answers a `Label` with a confidence, so it can be a cascade tier."""

    kind = "llm"

    def __init__(
        self,
        name: str,
        labels: Sequence[str],
        *,
        instructions: str | Path = "Classify the input.",
        prompt: str | None = None,
        model: str | None = None,
        votes: int = 5,
        vote_temperature: float = 0.8,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(name, timeout_s=timeout_s)
        self.labels = list(dict.fromkeys(labels))
        if len(self.labels) < 2:
            raise DefinitionError(f"classifier {name!r} needs at least two labels")
        if votes < 1:
            raise DefinitionError(f"classifier {name!r}: votes must be at least 1")
        listing = ", ".join(self.labels)
        self.instructions = (
            f"{read_instructions(instructions)}\n\n"
            f"Answer with exactly one of these labels and nothing else: {listing}."
        )
        self.model = model
        """The model; None uses the run's model."""
        self.votes = votes
        """Sampled answers for self-consistency, when the provider gives no log-probabilities."""
        longest = max(len(label) for label in self.labels)
        self.sampling = Sampling(temperature=0.0, max_tokens=max(8, longest // 2 + 8))
        self.vote_temperature = vote_temperature
        self._prompt = PromptTemplate(name, prompt)

    def request(self, input: Any, sampling: Sampling | None = None) -> ModelRequest:
        return ModelRequest(
            messages=[
                Message("system", self.instructions),
                Message("user", self._prompt.render(input)),
            ],
            choices=self.labels,
            sampling=sampling or self.sampling,
        )

    async def run(self, input: Any, ctx: RunContext) -> Label:
        model = self.model or ctx.model
        response = await ctx.gateway.complete(
            self.request(input), model=model, observer=ctx, validate=self._check
        )
        if response.choice_probs:
            label = max(response.choice_probs, key=lambda c: response.choice_probs[c])  # type: ignore[index]
            return Label(label=label, confidence=response.choice_probs[label])
        return await self._self_consistency(input, ctx, model, first=self._match(response.text))

    async def _self_consistency(
        self, input: Any, ctx: RunContext, model: str | None, first: str | None
    ) -> Label:
        said: list[str | None] = [first]
        for seed in range(1, self.votes):
            sampling = dataclasses.replace(
                self.sampling, temperature=self.vote_temperature, seed=seed
            )
            response = await ctx.gateway.complete(
                self.request(input, sampling), model=model, observer=ctx, validate=self._check
            )
            said.append(self._match(response.text))
        counts = Counter(label for label in said if label is not None)
        if not counts:
            return Label(label=None, confidence=0.0)
        label, agreeing = counts.most_common(1)[0]
        return Label(label=label, confidence=agreeing / len(said))

    def _check(self, response: ModelResponse) -> None:
        """An answer worth caching names a label (one that does not counts as no vote, and
        is asked again next time rather than kept)."""
        if not response.choice_probs and self._match(response.text) is None:
            raise ValueError(f"the answer names none of the labels: {response.text!r}")

    def _match(self, text: str | None) -> str | None:
        """The label an answer names (case and surrounding punctuation ignored), else None."""
        answer = (text or "").strip().strip(".\"'`").casefold()
        return next((label for label in self.labels if label.casefold() == answer), None)


classify = LLMClassifier
"""`classify(name, labels, instructions=..., prompt=..., model=...)`: an LLM classifier tier."""
