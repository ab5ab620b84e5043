"""Routing: classify a customer message once, then run only the branch made for its kind.

Choose a route when inputs fall into distinct kinds that each need their own handling (here:
billing, technical and general replies, each with its own instructions; in practice often
their own model or tools too). Unlike a chain, where every input takes the same steps, or
parallel, where every section runs, a route pays for one classifier call and one branch. The
default branch catches what the classifier cannot place: a label outside the set (from a
code or ML classifier you pass as `classifier=`) or a confidence under `min_confidence`.

    python examples/route.py                 # on the embedded model
    python examples/route.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from llmflow import Gateway, RouteDecision, RunContext, RunHooks, Settings, Step, llm, route, run

MESSAGES = [
    "I was charged twice for order NW-1042, please refund one of the payments.",
    "The app crashes with error 502 every time I open my order history.",
    "Do you have a shop in Lyon where I can try the boots on?",
]


def reply(name: str, role: str) -> Step[Any, Any]:
    return llm(
        name,
        instructions=f"You are the {role} of an outdoor gear shop. Be brief and kind.",
        prompt="Customer message: {{ input }}\n\nYour two-sentence reply to the customer:",
        max_tokens=80,
    )


def build(classifier: Step[Any, Any] | None = None) -> Step[Any, Any]:
    return route(
        "support-desk",
        {
            "billing": reply("billing", "billing clerk: payments, invoices and refunds"),
            "technical": reply("technical", "technical support: app, website and log-in"),
            "general": reply("general", "customer service desk"),
        },
        classifier=classifier,  # None: an llm step constrained to the three labels
        instructions="Label the customer message: billing (payments, invoices, refunds), "
        "technical (errors, app, log-in) or general (anything else).",
        default="general",
    )


class Decisions(RunHooks):
    """Remembers each route decision (the classifier's recorded output)."""

    def __init__(self) -> None:
        self.taken: list[RouteDecision] = []

    def on_step_end(self, ctx: RunContext, *, output: Any, **kwargs: Any) -> None:
        if isinstance(output, RouteDecision):
            self.taken.append(output)


async def main(model: str | None) -> list[tuple[str, str]]:
    desk, gateway, decisions, handled = build(), Gateway(Settings()), Decisions(), []
    for message in MESSAGES:
        answer = await run(desk, message, gateway=gateway, model=model, hooks=[decisions])
        handled.append((decisions.taken[-1].label, answer))
    return handled


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local (default), openai:<model>, ...")
    for (branch, answer), message in zip(
        asyncio.run(main(parser.parse_args().model)), MESSAGES, strict=True
    ):
        print(f"> {message}\n[{branch}] {answer}\n")
