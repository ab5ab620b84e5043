"""The Agents SDK's Runner on a gateway model: tools, handoff schema, typed output, records."""

from __future__ import annotations

import json

from agents import Agent, RunConfig, Runner, function_tool
from pydantic import BaseModel

from llmflow import ModelCall, ModelRequest, ModelResponse, ToolCall, Usage
from llmflow.models.agents_adapter import GatewayModel
from llmflow.testing import ScriptedModel, scripted_gateway

NO_TRACING = RunConfig(tracing_disabled=True)


class Calls:
    budgets = ()

    def __init__(self) -> None:
        self.calls: list[ModelCall] = []

    def on_model_call(self, call: ModelCall) -> None:
        self.calls.append(call)


looked_up: list[str] = []


@function_tool
def order_status(order_id: str) -> str:
    """Look up the status of an order."""
    looked_up.append(order_id)
    return f"{order_id} shipped yesterday"


class Answer(BaseModel):
    status: str
    order_id: str


async def test_an_agent_calls_a_tool_then_answers_typed_through_the_gateway() -> None:
    def script(request: ModelRequest) -> str | ModelResponse:
        if not any(m.role == "tool" for m in request.messages):
            assert [t.name for t in request.tools] == ["order_status"]
            call = ToolCall(id="call_1", name="order_status", arguments='{"order_id": "NW-1"}')
            return ModelResponse(tool_calls=[call], finish_reason="tool_calls", usage=Usage())
        tool_result = next(m for m in request.messages if m.role == "tool")
        assert tool_result.content == "NW-1 shipped yesterday"
        assert request.output_schema is not None
        return json.dumps({"status": "shipped", "order_id": "NW-1"})

    gateway = scripted_gateway(ScriptedModel(script))
    observer = Calls()
    agent = Agent(
        name="support",
        instructions="Answer order questions.",
        tools=[order_status],
        output_type=Answer,
        model=GatewayModel(gateway, observer=observer),
    )
    result = await Runner.run(agent, "Where is NW-1?", run_config=NO_TRACING)
    assert result.final_output == Answer(status="shipped", order_id="NW-1")
    assert looked_up == ["NW-1"]
    assert len(observer.calls) == 2  # both turns of the loop were recorded by the gateway
    assert observer.calls[0].request.messages[0].content == "Answer order questions."


async def test_tools_are_withheld_after_the_round_cap_so_the_agent_ends() -> None:
    def script(request: ModelRequest) -> str | ModelResponse:
        if request.tools:  # a looping small model: always calls the tool while it can
            call = ToolCall(
                id=f"c{len(request.messages)}",
                name="order_status",
                arguments='{"order_id": "NW-2"}',
            )
            return ModelResponse(tool_calls=[call], finish_reason="tool_calls", usage=Usage())
        return "It shipped."

    gateway = scripted_gateway(ScriptedModel(script))
    agent = Agent(
        name="looper",
        instructions="i",
        tools=[order_status],
        model=GatewayModel(gateway, max_tool_rounds=2),
    )
    result = await Runner.run(agent, "status?", max_turns=10, run_config=NO_TRACING)
    assert result.final_output == "It shipped."


async def test_handoffs_are_offered_as_tools() -> None:
    seen: list[list[str]] = []

    def script(request: ModelRequest) -> str:
        seen.append([t.name for t in request.tools])
        return "Done."

    gateway = scripted_gateway(ScriptedModel(script))
    billing = Agent(name="billing", instructions="b", model=GatewayModel(gateway))
    triage = Agent(name="triage", instructions="t", handoffs=[billing], model=GatewayModel(gateway))
    result = await Runner.run(triage, "refund please", run_config=NO_TRACING)
    assert result.final_output == "Done."
    assert seen == [["transfer_to_billing"]]


async def test_streaming_delivers_the_answer_as_one_completed_response() -> None:
    gateway = scripted_gateway(ScriptedModel(["Streamed answer."]))
    agent = Agent(name="s", instructions="i", model=GatewayModel(gateway))
    result = Runner.run_streamed(agent, "hi", run_config=NO_TRACING)
    events = [event.type async for event in result.stream_events()]
    assert result.final_output == "Streamed answer."
    assert "raw_response_event" in events
