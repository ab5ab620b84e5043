"""Prompt chaining with a gate: the simplest pattern, and the one to reach for first.

Choose a chain when a task splits into fixed steps that each do one thing well (here: draft a
product blurb, then shorten it), and a cheap code check between steps can stop early or divert
(here: no blurb for products without a name). Each step sees the state built so far.

    python examples/chain.py                 # on the embedded model
    python examples/chain.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio

from pydantic import BaseModel

from llmflow import Gateway, Settings, Stop, assign, chain, code, gate, llm, run


class Product(BaseModel):
    name: str
    features: str
    blurb: str | None = None
    tagline: str | None = None


def build() -> object:
    write = llm(
        "write",
        instructions="You write product descriptions for an outdoor gear shop.",
        prompt="Product: {{ name }}\nFeatures: {{ features }}\n\nA two-sentence description:",
        max_tokens=80,
    )
    shorten = llm(
        "shorten",
        instructions="You write taglines of at most eight words.",
        prompt="{{ blurb }}\n\nA tagline for this product:",
        max_tokens=24,
    )
    return chain(
        "product-copy",
        code(lambda p: p.model_copy(update={"name": p.name.strip()}), name="clean"),
        gate("has-name", lambda p: bool(p.name) or Stop("no product name")),
        assign("blurb", write),
        assign("tagline", shorten),
    )


async def main(model: str | None) -> Product:
    product = Product(name="Ridgeline 2P tent", features="2 person, 1.9 kg, 3 season")
    result: Product = await run(build(), product, gateway=Gateway(Settings()), model=model)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local (default), openai:<model>, ...")
    print(asyncio.run(main(parser.parse_args().model)).model_dump_json(indent=2))
