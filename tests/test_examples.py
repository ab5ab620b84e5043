"""Every example runs, here with the scripted model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from llmflow import (
    Failed,
    ModelCallError,
    ModelRequest,
    ModelResponse,
    RefineResult,
    ToolCall,
    VoteResult,
    code,
    run,
)
from llmflow.testing import ScriptedModel, json_reply, scripted_gateway

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def test_chain_example() -> None:
    example = load("chain")
    model = ScriptedModel(["A light tent for two.", "Light. Fast. Yours."])
    product = example.Product(name=" Tent ", features="light")
    out = await run(example.build(), product, gateway=scripted_gateway(model))
    assert (out.name, out.blurb, out.tagline) == (
        "Tent",
        "A light tent for two.",
        "Light. Fast. Yours.",
    )
    assert "Product: Tent" in (model.requests[0].messages[-1].content or "")

    stopped = await run(
        example.build(), example.Product(name=" ", features="x"), gateway=scripted_gateway(model)
    )
    assert stopped.blurb is None  # the gate stopped the chain before any model call
    assert len(model.requests) == 2


def system(request: ModelRequest) -> str:
    return request.messages[0].content or ""


def prompt(request: ModelRequest) -> str:
    return request.messages[-1].content or ""


async def test_route_example_runs_only_the_chosen_branch() -> None:
    example = load("route")
    model = ScriptedModel(
        lambda r: (
            json_reply({"value": "technical"})
            if r.schema_name == "classify"
            else f"answered by: {system(r)}"
        )
    )
    decisions = example.Decisions()
    message = "The app shows error 502."
    answer = await run(example.build(), message, gateway=scripted_gateway(model), hooks=[decisions])
    assert "technical support" in answer
    assert [d.label for d in decisions.taken] == ["technical"]
    assert len(model.requests) == 2  # one classifier call, one branch: the others never ran
    assert prompt(model.requests[0]) == message
    assert prompt(model.requests[1]).startswith(f"Customer message: {message}")
    labels = model.requests[0].output_schema["properties"]["value"]["enum"]
    assert sorted(labels) == ["billing", "general", "technical"]


async def test_route_example_sends_an_unknown_label_to_the_default_branch() -> None:
    example = load("route")
    model = ScriptedModel(lambda r: f"answered by: {system(r)}")
    decisions = example.Decisions()
    rules = code(lambda message: "shipping", name="rules")  # a classifier with its own labels
    workflow = example.build(classifier=rules)
    answer = await run(workflow, "Where?", gateway=scripted_gateway(model), hooks=[decisions])
    assert "customer service desk" in answer
    assert [(d.label, d.chosen) for d in decisions.taken] == [("general", "shipping")]
    assert len(model.requests) == 1


def review_script(request: ModelRequest) -> str:
    if request.schema_name == "tone":
        return json_reply({"value": "pushy"})
    if request.schema_name == "claims":
        return json_reply({"claims": ["lightest tent on the market", "storm-proof"]})
    raise AssertionError(f"unexpected request {request.schema_name}")


async def test_parallel_example_merges_every_section_into_the_review() -> None:
    example = load("parallel")
    model = ScriptedModel(review_script)
    review = await run(example.build(), example.DESCRIPTION, gateway=scripted_gateway(model))
    assert isinstance(review, example.Review)
    assert review.tone == "pushy"
    assert review.claims.claims == ["lightest tent on the market", "storm-proof"]
    words = len(example.DESCRIPTION.split())
    assert review.length == example.Length(words=words, ok=words <= example.MAX_WORDS)
    assert sorted(r.schema_name for r in model.requests) == ["claims", "tone"]


async def test_parallel_example_collects_a_failed_section_and_keeps_the_others() -> None:
    example = load("parallel")

    def script(request: ModelRequest) -> str | BaseException:
        if request.schema_name == "claims":
            return ModelCallError("provider unavailable", model="scripted")
        return review_script(request)

    review = await run(
        example.build(), "Short text.", gateway=scripted_gateway(ScriptedModel(script))
    )
    assert isinstance(review.claims, Failed)
    assert "provider unavailable" in review.claims.error
    assert review.tone == "pushy"
    assert review.length == example.Length(words=2, ok=True)


async def test_vote_example_holds_a_draft_when_two_of_three_runs_say_unsafe() -> None:
    example = load("vote")
    unsafe_seeds = {0, 2}
    model = ScriptedModel(
        lambda r: json_reply({"value": "unsafe" if r.sampling.seed in unsafe_seeds else "safe"})
    )
    result = await run(example.build(), example.DRAFTS[1], gateway=scripted_gateway(model))
    assert isinstance(result, VoteResult)
    assert result.value is True  # held for review
    assert sorted(result.votes) == ["safe", "unsafe", "unsafe"]
    assert result.agreement == pytest.approx(2 / 3)
    assert sorted(r.sampling.seed for r in model.requests) == [0, 1, 2]  # three sampled runs
    assert all(r.sampling.temperature > 0 for r in model.requests)

    unsafe_seeds = {1}  # one run in three is not enough to hold the draft
    result = await run(example.build(), example.DRAFTS[0], gateway=scripted_gateway(model))
    assert (result.value, result.agreement) == (False, pytest.approx(1 / 3))


async def test_orchestrate_example_runs_one_worker_per_planned_section() -> None:
    example = load("orchestrate")
    titles = ["Volume", "Response times", "Actions"]

    def script(request: ModelRequest) -> str | BaseException:
        if request.schema_name == "plan":
            subtasks = [{"title": t, "instructions": f"Cover {t.lower()}."} for t in titles]
            return json_reply({"subtasks": subtasks})
        title = next(t for t in titles if f"Section: {t}\n" in prompt(request))
        if title == "Actions":
            return ModelCallError("provider unavailable", model="scripted")
        return f"Text about {title.lower()}."

    model = ScriptedModel(script)
    report = await run(example.build(), example.REQUEST, gateway=scripted_gateway(model))
    plan_schema = model.requests[0].output_schema
    assert plan_schema["properties"]["subtasks"]["maxItems"] == 4
    workers = [r for r in model.requests if r.schema_name == "write"]
    assert len(workers) == len(titles)  # one worker call per planned section
    assert all(example.REQUEST.facts in prompt(r) for r in workers)
    assert report.startswith(f"# {example.REQUEST.topic}\n")
    assert [line for line in report.splitlines() if line.startswith("## ")] == [
        f"## {t}" for t in titles
    ]
    assert "Text about volume." in report and "Text about response times." in report
    assert "(not written:" in report and "provider unavailable" in report  # collected


def refine_script(verdicts: list[tuple[bool, float]]) -> ScriptedModel:
    drafts = iter(range(1, 10))
    verdict = iter(verdicts)

    def script(request: ModelRequest) -> str:
        if request.schema_name == "review":
            passed, score = next(verdict)
            return json_reply({"passed": passed, "score": score, "feedback": f"fix {score:g}"})
        return f"draft {next(drafts)}"

    return ScriptedModel(script)


async def test_refine_example_stops_when_the_editor_passes_a_draft() -> None:
    example = load("refine")
    model = refine_script([(False, 4), (True, 9)])
    product = example.Product(name="Summit 45 backpack", features="45 l")
    result = await run(example.build(), product, gateway=scripted_gateway(model))
    assert isinstance(result, RefineResult)
    assert (result.stopped, result.passed, result.output, result.score) == (
        "passed",
        True,
        "draft 2",
        9,
    )
    assert len(result.rounds) == 2 and len(model.requests) == 4
    second = prompt(model.requests[2])  # the second draft sees the first and the feedback
    assert "Previous draft: draft 1" in second and "Editor: fix 4" in second
    assert "Previous draft" not in prompt(model.requests[0])


async def test_refine_example_stops_after_max_rounds_with_the_best_draft() -> None:
    example = load("refine")
    model = refine_script([(False, 3), (False, 6), (False, 5)])
    product = example.Product(name="Summit 45 backpack", features="45 l")
    result = await run(example.build(), product, gateway=scripted_gateway(model))
    assert (result.stopped, result.passed, result.output, result.score) == (
        "max_rounds",
        False,
        "draft 2",
        6,
    )
    assert [r.evaluation.score for r in result.rounds] == [3, 6, 5]
    assert len(model.requests) == 6


def tool_call(request: ModelRequest, name: str, arguments: dict[str, str]) -> ModelResponse:
    call = ToolCall(id=f"call_{len(request.messages)}", name=name, arguments=json.dumps(arguments))
    return ModelResponse(tool_calls=[call], finish_reason="tool_calls")


async def test_agent_example_looks_up_refunds_once_and_answers() -> None:
    example = load("agent")
    refund = {"order_id": "nw1042", "reason": "broken pole"}

    def script(request: ModelRequest) -> str | ModelResponse:
        results = [m.content or "" for m in request.messages if m.role == "tool"]
        if not results:
            return tool_call(request, "look_up_order", {"order_id": "NW-1042"})
        if len(results) < 3:  # asks for the refund twice: the second must be refused
            return tool_call(request, "request_refund", refund)
        return json_reply({"message": f"Done. {results[1]}"})

    model = ScriptedModel(script)
    hook = example.ToolCalls()
    reply = await run(
        example.build(), example.MESSAGE, gateway=scripted_gateway(model), hooks=[hook]
    )
    assert reply == example.Reply(
        message="Done. Refund of 249.0 EUR for NW-1042 requested (broken pole)."
    )
    assert example.ORDERS["NW-1042"]["status"] == "refunded"
    assert example.REFUNDS == ["NW-1042"]  # the repeated request changed nothing
    refused = [m.content or "" for m in model.requests[-1].messages if m.role == "tool"][2]
    assert refused.startswith("Error: the tool request_refund failed")
    assert [c.split(" ")[:2] for c in hook.calls] == [
        ["support/look_up_order[1]", "(tool)"],
        ["support/request_refund[2]", "(action)"],  # declared side_effect=True
        ["support/request_refund[3]", "(action)"],
    ]
    assert "failed: " in hook.calls[2]
    tools = {t.name for t in model.requests[0].tools}
    assert tools == {"look_up_order", "request_refund", "transfer_to_billing"}


async def test_agent_example_hands_billing_questions_to_the_billing_agent() -> None:
    example = load("agent")

    def script(request: ModelRequest) -> str | ModelResponse:
        if system(request).startswith("You are customer support"):
            return tool_call(request, "transfer_to_billing", {})
        assert system(request).startswith("You are the billing team")
        return json_reply({"message": "Your invoice shows 20 % VAT."})

    model = ScriptedModel(script)
    reply = await run(example.build(), "Why is VAT on my invoice?", gateway=scripted_gateway(model))
    assert reply.message == "Your invoice shows 20 % VAT."
    assert len(model.requests) == 2
    assert example.REFUNDS == []


async def test_cascade_example_sends_only_unsure_messages_to_the_llm() -> None:
    from llmflow import ModelResponse

    example = load("cascade")
    train, held_out = example.split()
    model = ScriptedModel(lambda r: ModelResponse(text="spam", choice_probs={"spam": 0.8}))
    flow = example.build(train)
    said = [await run(flow, text, gateway=scripted_gateway(model)) for text, _ in held_out[:100]]
    tiers = [s.tier for s in said]
    assert tiers.count("llm") == len(model.requests) < 30  # most are sure at the ml tier
    assert all(s.label == "spam" for s in said if s.tier == "llm")
    right = sum(s.label == truth for s, (_, truth) in zip(said, held_out, strict=False))
    assert right >= 85
