"""Evaluator-optimizer: draft, have an evaluator check it against criteria, redraft with its
feedback, until it passes or the round cap is reached.

Choose refine when there are clear criteria a draft can be checked against (here: a shop's
style guide for product descriptions) and a second round measurably helps. Each round costs a
generation and an evaluation, so cap the rounds; the result is the best-scoring draft and says
why the loop stopped. Unlike a chain (one pass) or a vote (independent runs), each round
builds on the previous draft and the evaluator's feedback.

    python examples/refine.py                # on the embedded model
    python examples/refine.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pydantic import BaseModel, Field

from llmflow import Evaluation, Gateway, RefineResult, Settings, Step, llm, refine, run

STYLE_GUIDE = (
    "Style guide: at most two sentences; name the product; one concrete number (weight, "
    "size or rating); no superlatives such as 'best' or 'ultimate'; no exclamation marks."
)


class Product(BaseModel):
    name: str
    features: str


class Verdict(Evaluation):
    """An `Evaluation` whose feedback is required: with the default (optional) feedback, small
    constrained models leave it out and the next round has nothing to act on."""

    feedback: str = Field(max_length=300)


def build() -> Step[Any, RefineResult]:
    write = llm(
        "write",
        instructions="You write product descriptions for an outdoor gear shop. " + STYLE_GUIDE,
        prompt="Product: {{ input.name }}\nFeatures: {{ input.features }}\n"
        "{% if previous %}Previous draft: {{ previous }}\nEditor: {{ feedback }}\n{% endif %}"
        "\nWrite the product description in two short sentences:",
        max_tokens=100,
    )
    review = llm(
        "review",
        instructions="You are the shop's editor. " + STYLE_GUIDE,
        prompt="Description: {{ output }}\n\nCheck the description against the style guide: "
        "passed (true only if it breaks no rule), score 0 to 10, feedback (the rule to fix):",
        output=Verdict,
        max_tokens=120,
    )
    return refine("product-description", generator=write, evaluator=review, max_rounds=3)


async def main(model: str | None) -> RefineResult:
    product = Product(name="Summit 45 backpack", features="45 l, 1.2 kg, rain cover, hip belt")
    result: RefineResult = await run(build(), product, gateway=Gateway(Settings()), model=model)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local (default), openai:<model>, ...")
    result = asyncio.run(main(parser.parse_args().model))
    for n, r in enumerate(result.rounds, start=1):
        print(
            f"round {n}: score {r.evaluation.score:g}, passed {r.evaluation.passed}\n"
            f"  draft: {r.output}\n  feedback: {r.evaluation.feedback}"
        )
    reason = "the editor passed a draft" if result.stopped == "passed" else "hit max_rounds"
    print(
        f"\nstopped: {result.stopped} ({reason}) after {len(result.rounds)} round(s); "
        f"best (score {result.score:g}):\n{result.output}"
    )
