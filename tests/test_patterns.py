"""The patterns' semantics with scripted models, failure paths included."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from llmflow import (
    Evaluation,
    Failed,
    ModelRequest,
    RunContext,
    RunHooks,
    StepError,
    Subtask,
    at_least,
    best_of,
    chain,
    code,
    llm,
    majority,
    orchestrate,
    parallel,
    refine,
    route,
    run,
    vote,
)
from llmflow.testing import ScriptedModel, json_reply, scripted_gateway


class Paths(RunHooks):
    def __init__(self) -> None:
        self.done: list[tuple[str, str, Any, str | None]] = []

    def on_step_end(
        self, ctx: RunContext, *, step: Any, output: Any, error: Any, **kw: Any
    ) -> None:
        self.done.append((ctx.path, step.kind, output, str(error) if error else None))

    def paths(self) -> list[str]:
        return [p for p, *_ in self.done]


def gw(script: Any = ()) -> Any:
    return scripted_gateway(ScriptedModel(script))


def const(name: str, value: Any) -> Any:
    return code(lambda _: value, name=name)


# -- route ---------------------------------------------------------------------------------------


async def test_route_runs_only_the_chosen_branch_and_records_the_decision() -> None:
    hooks = Paths()
    flow = route(
        "r",
        {"billing": const("billing", "B"), "tech": chain("tech", const("fix", "T"))},
        instructions="Pick a team.",
        default="billing",
    )
    model = ScriptedModel([json_reply({"value": "tech"})])
    assert (
        await run(flow, "my router is broken", gateway=scripted_gateway(model), hooks=[hooks])
        == "T"
    )
    assert hooks.paths() == ["r/classify", "r/tech/fix", "r/tech", "r"]
    decision = hooks.done[0][2]
    assert decision.label == "tech" and decision.chosen is None
    assert model.requests[0].output_schema["properties"]["value"]["enum"] == ["billing", "tech"]


async def test_route_falls_back_to_the_default_or_fails_without_one() -> None:
    class Said(BaseModel):
        label: str
        confidence: float

    unsure = code(lambda _: Said(label="tech", confidence=0.3), name="clf")
    branches = {"billing": const("billing", "B"), "tech": const("tech", "T")}
    flow = route("r", branches, classifier=unsure, default="billing", min_confidence=0.5)
    assert await run(flow, "x", gateway=gw()) == "B"

    unknown = code(lambda _: "sales", name="clf")
    with pytest.raises(StepError, match=r"chose 'sales'.*no default"):
        await run(route("r", branches, classifier=unknown), "x", gateway=gw())


async def test_a_failing_branch_names_its_path() -> None:
    def boom(_: Any) -> None:
        raise RuntimeError("db down")

    flow = route("r", {"a": code(boom, name="lookup")}, classifier=const("c", "a"))
    with pytest.raises(StepError) as info:
        await run(flow, "x", gateway=gw())
    assert info.value.path == "r/a"
    assert "db down" in str(info.value)


# -- parallel ------------------------------------------------------------------------------------


class Review(BaseModel):
    tone: str
    length: int


async def test_parallel_merges_sections_into_a_model() -> None:
    hooks = Paths()
    flow = parallel(
        "review",
        {"tone": const("tone", "friendly"), "length": code(len, name="length")},
        merge=Review,
    )
    assert await run(flow, "hello", gateway=gw(), hooks=[hooks]) == Review(
        tone="friendly", length=5
    )
    assert set(hooks.paths()) == {"review/tone", "review/length", "review"}


async def test_fail_fast_cancels_the_siblings() -> None:
    finished: list[str] = []

    async def slow(_: Any) -> str:
        await asyncio.sleep(5)
        finished.append("slow")
        return "late"

    def bad(_: Any) -> str:
        raise ValueError("broken section")

    flow = parallel("p", [code(slow), code(bad)])
    with pytest.raises(StepError, match="broken section") as info:
        await asyncio.wait_for(run(flow, "x", gateway=gw()), 2)
    assert info.value.path == "p/bad"
    assert finished == []


async def test_collect_keeps_partial_results_and_marks_failures() -> None:
    def bad(_: Any) -> str:
        raise ValueError("nope")

    out = await run(
        parallel("p", [const("good", 1), code(bad)], on_error="collect"), "x", gateway=gw()
    )
    assert out["good"] == 1
    assert isinstance(out["bad"], Failed) and "nope" in out["bad"].error


async def test_parallel_respects_its_concurrency_bound() -> None:
    in_flight = peak = 0

    async def work(_: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1

    sections = {f"s{i}": code(work, name=f"s{i}") for i in range(10)}
    await run(parallel("p", sections, max_concurrency=3), "x", gateway=gw())
    assert peak == 3


async def test_a_timeout_mid_fan_out_fails_the_step_and_cancels_the_rest() -> None:
    hooks = Paths()
    flow = parallel(
        "p",
        [const("quick", 1), code(lambda _: asyncio.sleep(5), name="stuck")],
        timeout_s=0.05,
    )
    with pytest.raises(StepError, match=r"timed out after 0\.05s") as info:
        await run(flow, "x", gateway=gw(), hooks=[hooks])
    assert info.value.path == "p"
    stuck = next(d for d in hooks.done if d[0] == "p/stuck")
    assert stuck[3] is not None  # recorded as cancelled, not left hanging


# -- vote ----------------------------------------------------------------------------------------


async def test_vote_runs_sampled_variants_and_reports_agreement() -> None:
    replies = iter(["safe", "unsafe", "unsafe"])
    model = ScriptedModel(lambda r: next(replies))
    hooks = Paths()
    flow = vote("v", llm("judge", instructions="Safe or unsafe?"), n=3, max_concurrency=1)
    result = await run(flow, "msg", gateway=scripted_gateway(model), hooks=[hooks])
    assert result.value == "unsafe"
    assert result.agreement == pytest.approx(2 / 3)
    assert [r.sampling.seed for r in model.requests] == [0, 1, 2]
    assert {r.sampling.temperature for r in model.requests} == {0.7}
    assert {"v/judge[1]", "v/judge[2]", "v/judge[3]"} <= set(hooks.paths())


async def test_vote_threshold_best_of_and_models() -> None:
    model = ScriptedModel(lambda r: "unsafe" if r.sampling.seed == 0 else "safe")
    flow = vote("v", llm("j", instructions="i"), n=3, aggregate=at_least(1, "unsafe"))
    assert (await run(flow, "m", gateway=scripted_gateway(model))).value is True

    scorer = code(len, name="length")
    lengths = ScriptedModel(lambda r: "x" * (1 + (r.sampling.seed or 0)))
    best = await run(vote("v", llm("w", instructions="i"), n=3, aggregate=best_of(scorer)), "m",
                     gateway=scripted_gateway(lengths))  # fmt: skip
    assert best.value == "xxx" and best.agreement == 3

    gateway = scripted_gateway(ScriptedModel(lambda r: "a"))
    gateway.register("other", ScriptedModel(lambda r: "b"))
    by_model = vote("v", llm("j", instructions="i"), models=["scripted", "other", "other"])
    assert (await run(by_model, "m", gateway=gateway)).votes == ["a", "b", "b"]


async def test_vote_leaves_out_failed_runs_and_fails_if_all_fail() -> None:
    def flaky(request: ModelRequest) -> str:
        if request.sampling.seed == 1:
            raise ValueError("boom")
        return "yes"

    result = await run(vote("v", llm("j", instructions="i"), n=3, aggregate=majority()), "m",
                       gateway=scripted_gateway(ScriptedModel(flaky)))  # fmt: skip
    assert result.votes == ["yes", "yes"]

    def down(request: ModelRequest) -> str:
        raise ValueError("down")

    with pytest.raises(StepError, match="every run failed"):
        await run(
            vote("v", llm("j", instructions="i")),
            "m",
            gateway=scripted_gateway(ScriptedModel(down)),
        )


# -- orchestrate ---------------------------------------------------------------------------------


def plan_of(n: int, worker: str | None = None) -> Any:
    return code(
        lambda _: [Subtask(title=f"t{i}", instructions=f"do {i}", worker=worker) for i in range(n)],
        name="planner",
    )


async def test_orchestrate_runs_one_worker_per_subtask_and_synthesises() -> None:
    hooks = Paths()
    flow = orchestrate(
        "o",
        planner=plan_of(3),
        workers=code(lambda w: w.task.title.upper(), name="writer"),
        synthesiser=code(lambda s: "+".join(r.output for r in s.results), name="join"),
    )
    assert await run(flow, "task", gateway=gw(), hooks=[hooks]) == "T0+T1+T2"
    assert {"o/plan", "o/worker[1]", "o/worker[2]", "o/worker[3]", "o/synthesise"} <= set(
        hooks.paths()
    )


async def test_an_llm_planner_is_bounded_by_its_schema_and_named_workers_are_used() -> None:
    plan = {"subtasks": [{"title": "a", "instructions": "x", "worker": "math"}]}
    model = ScriptedModel([json_reply(plan)])
    flow = orchestrate(
        "o",
        instructions="Plan.",
        workers={"text": const("text", "T"), "math": const("math", "M")},
        synthesiser=code(lambda s: [r.output for r in s.results], name="s"),
        max_subtasks=2,
    )
    assert await run(flow, "x", gateway=scripted_gateway(model)) == ["M"]
    schema = json.dumps(model.requests[0].output_schema)
    assert '"maxItems": 2' in schema


async def test_too_many_subtasks_fail_with_the_bound_named() -> None:
    flow = orchestrate("o", planner=plan_of(9), workers=const("w", 1), synthesiser=const("s", 1),
                       max_subtasks=8)  # fmt: skip
    with pytest.raises(StepError, match="9 subtasks, more than max_subtasks=8") as info:
        await run(flow, "x", gateway=gw())
    assert info.value.path == "o/plan"


async def test_failed_workers_are_collected_or_fail_fast() -> None:
    def worker(item: Any) -> str:
        if item.task.title == "t1":
            raise ValueError("worker broke")
        return "ok"

    synth = code(lambda s: [(r.output, r.error) for r in s.results], name="s")
    flow = orchestrate("o", planner=plan_of(2), workers=code(worker, name="w"), synthesiser=synth)
    out = await run(flow, "x", gateway=gw())
    assert out[0] == ("ok", None)
    assert out[1][0] is None and "worker broke" in out[1][1]

    strict = orchestrate("o", planner=plan_of(2), workers=code(worker, name="w"),
                         synthesiser=synth, on_error="fail_fast")  # fmt: skip
    with pytest.raises(StepError, match="worker broke"):
        await run(strict, "x", gateway=gw())


# -- refine --------------------------------------------------------------------------------------


async def test_refine_feeds_back_until_the_evaluator_passes() -> None:
    hooks = Paths()
    seen: list[Any] = []

    def generate(draft: Any) -> str:
        seen.append((draft.round, draft.previous, draft.feedback))
        return f"draft {draft.round}"

    def evaluate(candidate: Any) -> Evaluation:
        ok = candidate.round == 2
        return Evaluation(passed=ok, score=8 if ok else 3, feedback="shorter please")

    flow = refine("r", generator=code(generate, name="g"), evaluator=code(evaluate, name="e"))
    result = await run(flow, "brief", gateway=gw(), hooks=[hooks])
    assert (result.output, result.stopped, result.passed, len(result.rounds)) == (
        "draft 2",
        "passed",
        True,
        2,
    )
    assert seen == [(1, None, None), (2, "draft 1", "shorter please")]
    assert {"r/generate[1]", "r/evaluate[1]", "r/generate[2]", "r/evaluate[2]"} <= set(
        hooks.paths()
    )


async def test_refine_stops_at_the_round_cap_with_the_best_output() -> None:
    scores = iter([4, 7, 5])
    flow = refine(
        "r",
        generator=code(lambda d: f"v{d.round}", name="g"),
        evaluator=code(
            lambda c: Evaluation(passed=False, score=next(scores), feedback="no"), name="e"
        ),
        max_rounds=3,
    )
    result = await run(flow, "x", gateway=gw())
    assert (result.output, result.score, result.stopped, result.passed) == (
        "v2",
        7,
        "max_rounds",
        False,
    )
    assert len(result.rounds) == 3


async def test_refine_with_llm_steps_uses_the_feedback_in_the_prompt() -> None:
    def reply(request: ModelRequest) -> str:
        if request.schema_name == "critic":
            passed = "v2" in (request.messages[-1].content or "")
            return json_reply({"passed": passed, "score": 9 if passed else 2, "feedback": "add v2"})
        return "v2" if "add v2" in (request.messages[-1].content or "") else "v1"

    flow = refine(
        "r",
        generator=llm("writer", instructions="Write.", prompt="{{ input }} {{ feedback or '' }}"),
        evaluator=llm("critic", instructions="Judge.", output=Evaluation, prompt="{{ output }}"),
    )
    result = await run(flow, "brief", gateway=scripted_gateway(ScriptedModel(reply)))
    assert result.output == "v2" and result.stopped == "passed"


# -- nesting -------------------------------------------------------------------------------------


async def test_patterns_nest_and_record_their_paths() -> None:
    from llmflow import agent

    def passing(c: Any) -> Evaluation:
        return Evaluation(passed=True, score=9, feedback="")

    polish = refine("polish", generator=code(lambda d: f"{d.input}!", name="g"),
                    evaluator=code(passing, name="e"))  # fmt: skip
    helper = agent("helper", instructions="Help.")
    sections = parallel("aspects", {"agent": helper, "upper": code(str.upper, name="upper")})
    planned = orchestrate(
        "plan-work",
        planner=plan_of(2),
        workers=refine(
            "draft", generator=code(lambda d: "w", name="g"), evaluator=code(passing, name="e")
        ),
        synthesiser=code(lambda s: len(s.results), name="count"),
    )
    flow = chain(
        "triage",
        route(
            "route",
            {"billing": chain("billing", polish), "other": const("other", "-")},
            classifier=const("c", "billing"),
        ),
        code(lambda r: r.output, name="unwrap"),
        sections,
        code(lambda d: d["upper"], name="pick"),
        planned,
    )
    hooks = Paths()
    out = await run(flow, "refund", gateway=gw(lambda r: "agent says hi"), hooks=[hooks])
    assert out == 2
    paths = set(hooks.paths())
    assert {
        "triage/route/classify",
        "triage/route/billing/polish/generate[1]",
        "triage/route/billing/polish/evaluate[1]",
        "triage/aspects/agent",
        "triage/aspects/upper",
        "triage/plan-work/worker[1]/generate[1]",
        "triage/plan-work/worker[2]/evaluate[1]",
        "triage/plan-work/synthesise",
    } <= paths
    kinds = {p: k for p, k, *_ in hooks.done}
    assert kinds["triage/aspects/agent"] == "agent"
    assert kinds["triage/plan-work/worker[1]"] == "refine"


async def test_an_invalid_classifier_output_goes_to_the_default_branch() -> None:
    model = ScriptedModel([json_reply({"value": "shipping"})] * 3)  # not a branch, every try
    flow = route(
        "r", {"billing": const("billing", "B"), "general": const("general", "G")},
        instructions="Pick.", default="general",
    )  # fmt: skip
    hooks = Paths()
    assert await run(flow, "x", gateway=scripted_gateway(model), hooks=[hooks]) == "G"
    decision = hooks.done[0][2]
    assert decision.label == "general" and "invalid output" in decision.chosen


def test_parallel_sections_need_unique_names() -> None:
    step = const("w", 1)
    with pytest.raises(ValueError, match=r"repeated: \['w'\]"):
        parallel("p", [step, step])
