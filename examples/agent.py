"""An agent: the model decides which tools to call, in what order, and when it is done.

Choose an agent when the steps cannot be fixed in advance (here: a customer-support request
that may need an order looked up, a refund requested, or a hand-off to billing) and the
model must pick its next action from what the tools return. It is the most flexible pattern
and the least predictable: prefer a chain or a route when the steps are known, and declare
tools that change something with `side_effect=True` so that they are recorded as actions.

    python examples/agent.py                 # on the embedded model
    python examples/agent.py --model openai:gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

from pydantic import BaseModel, Field

from llmflow import Gateway, RunContext, RunHooks, Settings, Step, agent, run, tool

ORDERS: dict[str, dict[str, Any]] = {
    "NW-1042": {"item": "Ridgeline 2P tent", "total_eur": 249.0, "status": "delivered"},
    "NW-1043": {"item": "Summit 45 backpack", "total_eur": 139.0, "status": "in transit"},
}
REFUNDS: list[str] = []  # order ids refunded in this process
MESSAGE = "Hi, the tent from order NW-1042 arrived with a broken pole. Can I get a refund?"


def find(order_id: str) -> tuple[str, dict[str, Any]]:  # accepts NW-1042, nw1042, #1042...
    number = re.search(r"\d{4}", order_id)
    key = f"NW-{number.group()}" if number else order_id
    if key not in ORDERS:
        raise ValueError(f"there is no order {order_id!r}")
    return key, ORDERS[key]


def look_up_order(order_id: str) -> str:
    """Look up an order by its id (like NW-1042): the item, the total and the status."""
    key, order = find(order_id)
    return f"{key}: {order['item']}, {order['total_eur']} EUR, {order['status']}"


def request_refund(order_id: str, reason: str) -> str:
    """Refund a delivered order in full. Only when the customer asks for a refund."""
    key, order = find(order_id)
    if order["status"] != "delivered":
        raise ValueError(f"order {key} is {order['status']}, not delivered: no refund")
    order["status"] = "refunded"
    REFUNDS.append(key)
    return f"Refund of {order['total_eur']} EUR for {key} requested ({reason})."


class Reply(BaseModel):  # a typed answer also keeps small models from answering in tool JSON
    message: str = Field(max_length=400)


def build() -> Step[Any, Reply]:
    billing = agent(
        "billing",
        instructions="You are the billing team of an outdoor gear shop: invoices, VAT and "
        "payment methods. Answer the customer in two sentences.",
        description="Questions about invoices, VAT and payment methods.",
        tools=[look_up_order],
        output=Reply,
    )
    return agent(
        "support",
        instructions="You are customer support for an outdoor gear shop. Look up the order, "
        "request a refund only if the customer asks for one, then answer in two sentences.",
        tools=[look_up_order, tool(request_refund, side_effect=True)],
        handoffs=[billing],
        output=Reply,
        max_turns=8,
    )


class ToolCalls(RunHooks):  # lists each tool call: path, kind (tool or action), arguments
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_step_end(self, ctx: RunContext, *, step: Step[Any, Any], **kw: Any) -> None:
        if step.kind in ("tool", "action"):
            failed = f" -> failed: {kw['error'].reason}" if kw["error"] else ""
            self.calls.append(f"{ctx.path} ({step.kind}) {kw['input']}{failed}")


async def main(model: str | None) -> tuple[Reply, list[str]]:
    hook = ToolCalls()
    reply = await run(build(), MESSAGE, gateway=Gateway(Settings()), model=model, hooks=[hook])
    return reply, hook.calls


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local (default), openai:<model>, ...")
    reply, calls = asyncio.run(main(parser.parse_args().model))
    print(f"> {MESSAGE}\n", *calls, f"refunded: {REFUNDS}\nanswer: {reply.message}", sep="\n")
