"""Real runs for the viewer's tests: a workflow of an llm step, an agent with a tool and a
code step, run on the scripted model and recorded in the run store like any run. One mail
holds `<script>`, one item fails, and a key-shaped text sits in an output."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from llmflow import ModelRequest, agent, tool
from llmflow.models.client import ModelResponse, ToolCall, Usage
from llmflow.patterns.chain import chain
from llmflow.runtime.runner import BatchResult, Item, Workflow, run_batch
from llmflow.settings import Settings
from llmflow.steps.base import CodeStep
from llmflow.steps.llm import llm
from llmflow.store.sqlite import RunStore
from llmflow.testing import ScriptedModel, scripted_gateway

SCRIPT = "<script>document.title='pwned'</script>"
FAKE_KEY = "sk-proj-" + "A1b2C3d4" * 6
"""Shaped like a provider key: the viewer must never show it."""
MAILS = {
    "invoice.eml": "Invoice 4411 is overdue, please pay 120 EUR.",
    "xss.eml": f"Hello {SCRIPT} <b>bold</b> & friends",
    "broken.eml": "FAIL this one",
    "order.eml": "Where is my order NW-1?",
}


def lookup_order(order: str) -> str:
    """The status of an order."""
    return {"NW-1": "shipped"}.get(order, "unknown")


def _check(text: str) -> str:
    if text.startswith("FAIL"):
        raise ValueError("a malformed mail")
    return text


def _reply(request: ModelRequest) -> Any:
    system = request.messages[0].content or ""
    user = request.messages[-1].content or ""
    if "Classify" in system:
        return "billing" if "Invoice" in user else "support"
    # The agent: look the order up once, then answer with what the tool said.
    if request.messages[-1].role == "tool":
        return f"Your order is {user}. (key seen: {FAKE_KEY})"
    return ModelResponse(
        tool_calls=[
            ToolCall(id="c1", name="lookup_order", arguments=json.dumps({"order": "NW-1"}))
        ],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=12, output_tokens=6),
    )


def workflow() -> Workflow:
    step = chain(
        "support",
        CodeStep("check", _check),
        llm("classify", instructions="Classify the mail: billing or support.", output=str),
        agent("answer", instructions="Answer the customer.", tools=[tool(lookup_order)]),
    )
    return Workflow(name="support", step=step)


def fill(home: Path, runs: int = 2) -> list[BatchResult]:
    """Record `runs` runs of the support workflow over MAILS in `home`'s run store."""
    settings = Settings(home=home)
    results = []
    for _ in range(runs):
        store = RunStore(settings.db_path)
        gateway = scripted_gateway(ScriptedModel(_reply), settings=settings)
        items = [Item(key, text) for key, text in MAILS.items()]
        try:
            results.append(
                asyncio.run(
                    run_batch(workflow(), items, gateway=gateway, store=store, source="inbox/")
                )
            )
        finally:
            store.close()
    return results
