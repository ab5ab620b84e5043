"""A cascade: rules, then a trained classifier, then an LLM — each only when the cheaper is unsure.

Choose a cascade when most inputs are easy and a few are hard: code and a classic model answer
the easy ones for almost nothing, and only the rest pays for an LLM call. Here an SMS spam
filter: keyword rules answer with certainty or abstain, a TF-IDF + logistic-regression model
trained on 1,600 labelled messages (data/sms_spam, © Almeida & Gómez Hidalgo) answers when it
is at least 90 % sure, and the LLM decides the rest, its confidence read from the token
log-probabilities of the two labels. `llmflow calibrate` picks the thresholds from data.

    python examples/cascade.py                  # on the embedded model
    python examples/cascade.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio
import random
from pathlib import Path

from llmflow import CascadeResult, Gateway, MLStep, Settings, cascade, classify, rules, run
from llmflow.patterns.cascade import Cascade
from llmflow.steps.ml import read_labelled

DATA = Path(__file__).parent.parent / "data" / "sms_spam" / "dev.jsonl"


def split() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    texts, labels = read_labelled(DATA)
    rows = list(zip(texts, labels, strict=True))
    random.Random(1).shuffle(rows)
    return rows[:1600], rows[1600:]


def build(train: list[tuple[str, str]]) -> Cascade:
    return cascade(
        "spam-filter",
        (rules("rules", [(r"\b(claim|collect) (your )?(prize|reward)\b", "spam")]), 1.0),
        (MLStep.train("ml", [t for t, _ in train], [label for _, label in train]), 0.9),
        (classify("llm", ["ham", "spam"], instructions="Is this text message spam?"), 0.0),
    )


async def main(model: str | None, n: int) -> list[tuple[str, str, CascadeResult]]:
    train, held_out = split()
    flow = build(train)
    gateway = Gateway(Settings())
    return [
        (text, truth, await run(flow, text, gateway=gateway, model=model))
        for text, truth in held_out[:n]
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local (default), openai:<model>, ...")
    parser.add_argument("-n", type=int, default=20, help="held-out messages to classify")
    args = parser.parse_args()
    results = asyncio.run(main(args.model, args.n))
    for text, truth, said in results:
        mark = "ok " if said.label == truth else "BAD"
        print(f"{mark} {said.label:4} by {said.tier:5} ({said.confidence or 0:.2f})  {text[:60]}")
    tiers = [said.tier for _, _, said in results]
    print({tier: tiers.count(tier) for tier in ("rules", "ml", "llm")}, "answered per tier")
