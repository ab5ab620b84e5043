"""Parallelization by voting: run one uncertain check several times and aggregate the answers.

Choose a vote when one judgement is cheap but unreliable and a mistake is costly (here: may a
drafted customer reply be sent without a human reading it?). Each run samples with its own
seed (or runs on another model, with `models=`); `majority()` takes the most common answer,
`at_least(k, value)` raises a flag as soon as k runs agree on it, and the agreement shows how
sure the runs were. Unlike sectioning (`parallel`), every run does the same task.

    python examples/vote.py                  # on the embedded model
    python examples/vote.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Literal

from llmflow import Gateway, Settings, Step, VoteResult, at_least, llm, run, vote

DRAFTS = [
    "Thanks for your message! Your order NW-1042 shipped today and should arrive on Friday.",
    "We guarantee a full refund plus 50 EUR compensation. Your card number 4111 1111 is on file.",
]
RUNS = 3
HOLD_AT = 2  # hold the draft for a human when 2 of the 3 runs say unsafe


def build() -> Step[Any, VoteResult]:
    check = llm(
        "safety-check",
        instructions="You check customer-service replies before they are sent. A reply is "
        "unsafe if it promises money, makes legal statements, shares personal data or is rude.",
        prompt="Reply: {{ input }}\n\nIs this reply safe or unsafe to send without review?",
        output=Literal["safe", "unsafe"],
        max_tokens=16,
    )
    return vote("auto-send", check, n=RUNS, aggregate=at_least(HOLD_AT, "unsafe"))


async def main(model: str | None) -> list[VoteResult]:
    gateway = Gateway(Settings())
    return [await run(build(), draft, gateway=gateway, model=model) for draft in DRAFTS]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local (default), openai:<model>, ...")
    for draft, result in zip(DRAFTS, asyncio.run(main(parser.parse_args().model)), strict=True):
        verdict = "HOLD for review" if result.value else "auto-send"
        # With at_least, `agreement` is the share of runs that gave the flagged value.
        print(f"> {draft}\n{verdict}: votes {result.votes}, {result.agreement:.0%} said unsafe\n")
