"""The agent step: tools recorded as steps, failures, max turns, handoffs, agents as tools."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from llmflow import (
    ModelRequest,
    ModelResponse,
    RunContext,
    RunHooks,
    StepError,
    ToolCall,
    Usage,
    agent,
    chain,
    run,
    tool,
)
from llmflow.testing import ScriptedModel, scripted_gateway


class Steps(RunHooks):
    def __init__(self) -> None:
        self.done: list[dict[str, Any]] = []
        self.calls: list[str] = []

    def on_step_end(
        self, ctx: RunContext, *, step: Any, input: Any, output: Any, error: Any, **kw: Any
    ) -> None:
        self.done.append({"path": ctx.path, "kind": step.kind, "input": input, "output": output,
                          "error": str(error) if error else None})  # fmt: skip

    def on_model_call(self, ctx: RunContext, *, call: Any, **kw: Any) -> None:
        self.calls.append(ctx.path)


def call(name: str, args: dict[str, Any], id: str = "c1") -> ModelResponse:
    return ModelResponse(
        tool_calls=[ToolCall(id=id, name=name, arguments=json.dumps(args))],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=5, output_tokens=5),
    )


orders = {"NW-1": "shipped"}
refunds: list[str] = []


def lookup(order_id: str) -> str:
    """Look up an order's status."""
    if order_id not in orders:
        raise KeyError(f"no order {order_id}")
    return orders[order_id]


def refund(order_id: str, reason: str) -> str:
    """Refund an order."""
    refunds.append(order_id)
    return "refunded"


async def test_tool_calls_are_recorded_as_steps_and_side_effects_as_actions() -> None:
    def script(request: ModelRequest) -> Any:
        tools_done = [m for m in request.messages if m.role == "tool"]
        if len(tools_done) == 0:
            return call("lookup", {"order_id": "NW-1"})
        if len(tools_done) == 1:
            return call("refund", {"order_id": "NW-1", "reason": "late"}, id="c2")
        return "Refunded NW-1."

    hooks = Steps()
    step = agent("support", instructions="Help.", tools=[lookup, tool(refund, side_effect=True)])
    out = await run(
        step, "refund NW-1", gateway=scripted_gateway(ScriptedModel(script)), hooks=[hooks]
    )
    assert out == "Refunded NW-1."
    assert refunds == ["NW-1"]
    by_path = {d["path"]: d for d in hooks.done}
    assert by_path["support/lookup[1]"]["kind"] == "tool"
    assert json.loads(by_path["support/lookup[1]"]["input"]) == {"order_id": "NW-1"}
    assert by_path["support/lookup[1]"]["output"] == "shipped"
    assert by_path["support/refund[2]"]["kind"] == "action"
    assert by_path["support"]["kind"] == "agent"
    assert hooks.calls == ["support"] * 3  # every model call in the loop went through the gateway


async def test_a_tool_that_raises_is_recorded_and_the_agent_is_told() -> None:
    def script(request: ModelRequest) -> Any:
        results = [m.content for m in request.messages if m.role == "tool"]
        if not results:
            return call("lookup", {"order_id": "NW-404"})
        assert "failed" in (results[0] or "") and "NW-404" in (results[0] or "")
        return "I could not find that order."

    hooks = Steps()
    step = agent("support", instructions="Help.", tools=[lookup])
    out = await run(
        step, "where is NW-404", gateway=scripted_gateway(ScriptedModel(script)), hooks=[hooks]
    )
    assert out == "I could not find that order."
    failed = next(d for d in hooks.done if d["path"] == "support/lookup[1]")
    assert "no order NW-404" in failed["error"]


async def test_an_agent_past_max_turns_fails_naming_the_step() -> None:
    model = ScriptedModel(lambda r: call("lookup", {"order_id": "NW-1"}, id=f"c{len(r.messages)}"))
    step = agent("looper", instructions="Help.", tools=[lookup], max_turns=3)
    with pytest.raises(StepError, match="max_turns=3") as info:
        await run(chain("flow", step), "x", gateway=scripted_gateway(model))
    assert info.value.path == "flow/looper"


class Verdict(BaseModel):
    approve: bool
    reason: str


async def test_typed_output_handoffs_and_agents_as_tools() -> None:
    def script(request: ModelRequest) -> Any:
        system = request.messages[0].content or ""
        names = [t.name for t in request.tools]
        if system.startswith("Triage"):
            assert "transfer_to_billing" in names and "policy" in names
            if not any(m.role == "tool" for m in request.messages):
                return call("policy", {"input": "refund window?"})
            return call("transfer_to_billing", {}, id="c2")
        if system.startswith("Policy"):
            return "30 days."
        assert request.output_schema is not None  # billing answers typed
        return json.dumps({"approve": True, "reason": "within 30 days"})

    hooks = Steps()
    billing = agent("billing", instructions="Billing decides.", output=Verdict)
    policy = agent("policy", instructions="Policy answers.")
    triage = agent(
        "triage", instructions="Triage routes.", handoffs=[billing], tools=[policy.as_tool()]
    )
    out = await run(
        triage, "refund?", gateway=scripted_gateway(ScriptedModel(script)), hooks=[hooks]
    )
    assert out == Verdict(approve=True, reason="within 30 days")
    assert "triage/policy[1]" in [d["path"] for d in hooks.done]
    assert "triage/billing" in hooks.calls  # the handoff's model calls are recorded under it
