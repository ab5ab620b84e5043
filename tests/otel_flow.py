"""The nested workflow of the OpenTelemetry tests (tests/test_otel.py): a route whose `order`
branch runs an agent with a tool next to a summary (route > parallel > agent > tool), on the
scripted model. No OpenTelemetry import here: the test that the export is off runs it too."""

from __future__ import annotations

from typing import Any

from llmflow import ModelRequest, agent, tool
from llmflow.models.client import ModelResponse, ToolCall, Usage
from llmflow.patterns.parallel import parallel
from llmflow.patterns.route import route
from llmflow.runtime.runner import Workflow
from llmflow.steps.base import CodeStep
from llmflow.steps.llm import llm

API_KEY = "test-key-Q7x9w2LmN4pR8sT1"
"""The configured provider key (OPENAI_API_KEY): it must appear nowhere in the export."""
FAKE_KEY = "sk-proj-" + "Z9y8X7w6" * 6
"""Shaped like a provider key, in a tool's result and a model's answer."""
MAILS = {
    "order.eml": "Where is my order NW-1? My key is " + API_KEY,
    "other.eml": "Hello there, just saying thanks.",
}
ANSWER = "Your order NW-1 has shipped."


def lookup_order(order: str) -> str:
    """The status of an order."""
    return f"shipped (internal note: {FAKE_KEY})"


def reply(request: ModelRequest) -> Any:
    system = request.messages[0].content or ""
    last = request.messages[-1]
    if "Triage" in system:
        return "order" if "order" in (last.content or "") else "other"
    if "Summarize" in system:
        return "A customer asks about an order."
    if last.role == "tool":  # the agent, after its tool call
        return f"{ANSWER} (seen: {API_KEY})"
    return ModelResponse(
        tool_calls=[ToolCall(id="call-1", name="lookup_order", arguments='{"order": "NW-1"}')],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=12, output_tokens=6),
    )


def workflow() -> Workflow:
    answer = parallel(
        "work",
        [
            agent("support", instructions="Answer the customer.", tools=[tool(lookup_order)]),
            llm("summary", instructions="Summarize the mail.", output=str),
        ],
    )
    step = route(
        "triage",
        {"order": answer, "other": CodeStep("thank", lambda text: "thanks")},
        classifier=llm("classify", instructions="Triage the mail: order or other.", output=str),
    )
    return Workflow(name="desk", step=step)
