"""Parallelization by sectioning: independent checks of one input, run at once and merged.

Choose parallel sections when a task splits into parts that do not depend on each other
(here: a product description reviewed for tone, for checkable claims, and for length), so
they can run concurrently, each with a short focused prompt, and be merged into one typed
result. Unlike a chain, no section sees another's output; unlike a route, every section runs.
With `on_error="collect"` a failed section becomes a `Failed` in the result and the others
still count; the default, `fail_fast`, cancels the rest and raises.

    python examples/parallel.py              # on the embedded model
    python examples/parallel.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmflow import Failed, Gateway, Settings, Step, code, llm, parallel, run

DESCRIPTION = (
    "The Ridgeline 2P is the lightest two-person tent on the market at 1.9 kg. Fully "
    "waterproof to 3000 mm and certified storm-proof, it pitches in under three minutes. "
    "Buy now before it sells out!"
)
MAX_WORDS = 30


class Claims(BaseModel):
    claims: list[str] = Field(max_length=3, description="claims a customer could check")


class Length(BaseModel):
    words: int
    ok: bool


class Review(BaseModel):
    tone: Literal["friendly", "neutral", "pushy"] | Failed
    claims: Claims | Failed
    length: Length | Failed


def count_words(text: str) -> Length:
    words = len(text.split())
    return Length(words=words, ok=words <= MAX_WORDS)


def build() -> Step[Any, Review]:
    tone = llm(
        "tone",
        instructions="You review the tone of product descriptions for an outdoor gear shop.",
        prompt="{{ input }}\n\nThe tone of this description, friendly, neutral or pushy:",
        output=Literal["friendly", "neutral", "pushy"],
        max_tokens=16,
    )
    claims = llm(
        "claims",
        instructions="You fact-check product descriptions. List at most three claims.",
        prompt="{{ input }}\n\nThe factual claims in this description that need proof:",
        output=Claims,
        max_tokens=120,
    )
    sections = {"tone": tone, "claims": claims, "length": code(count_words, name="length")}
    return parallel("review", sections, merge=Review, on_error="collect")


async def main(model: str | None) -> Review:
    result: Review = await run(build(), DESCRIPTION, gateway=Gateway(Settings()), model=model)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local (default), openai:<model>, ...")
    review = asyncio.run(main(parser.parse_args().model))
    print(review.model_dump_json(indent=2))
    failed = [name for name, value in review if isinstance(value, Failed)]
    print(f"failed sections: {', '.join(failed)}" if failed else "every section succeeded")
