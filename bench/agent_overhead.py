"""What llmflow's agent step costs on top of the OpenAI Agents SDK's Runner it runs on.

An agent with one tool and a scripted model that calls the tool 5 times (one call a turn),
then answers: 6 model calls and 5 tool calls a run, no sleeps, so all the time is framework
code. Per run, in µs:

  llmflow  `agent(...)` run as `await step(input, RunContext(gateway=scripted_gateway(m)))`:
           the SDK's Runner on `GatewayModel`, every model call through the gateway, every
           tool call a recorded step.
  SDK      the raw Runner: `agents.Agent` with an `agents.function_tool` and a minimal
           scripted SDK `Model` returning the same items (function calls, then a message).
  adapter  (for the breakdown) the raw Runner and tool on `GatewayModel`: llmflow's model
           path without the agent step and its tool-call steps.
  SDK + agents.testing.ScriptedModel (for context): the SDK's own scripted model, which
           deep-copies every request it records, so it is slower than the minimal model.

Tracing is off everywhere (RunConfig(tracing_disabled=True)). The machine is noisy, so the
variants' blocks of RUNS runs are interleaved in one process (ROUNDS rounds, the order rotating)
and each figure is given as the best and the median wall time, the best CPU time of the process
(which other processes do not inflate), and the median of each round's paired ratio. Two parts
are timed on their own: getting the SDK agent of a run, and one model call.

Run: .venv/bin/python bench/agent_overhead.py [--profile]  (rewrites bench/RESULTS-agent.md;
--profile also prints a cProfile of the llmflow runs, llmflow's own functions first)
"""

from __future__ import annotations

import asyncio
import cProfile
import datetime
import gc
import io
import json
import platform
import pstats
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import agents
from agents import Agent, ModelSettings, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel as SDKScriptedModel
from agents.testing import assistant_message
from agents.testing import function_call as sdk_function_call
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from llmflow.models.agents_adapter import GatewayModel
from llmflow.models.client import ModelRequest, ModelResponse, ToolCall, Usage
from llmflow.steps.agent import AgentStep, agent
from llmflow.steps.context import RunContext
from llmflow.testing import ScriptedModel, scripted_gateway

TOOL_CALLS, RUNS, ROUNDS = 5, 25, 30
TARGET = 1.10
INSTRUCTIONS = "Look the key up, as often as you need, then answer."
ANSWER = "The value is 42."
NO_TRACING = RunConfig(tracing_disabled=True)
RESULTS = Path(__file__).with_name("RESULTS-agent.md")
REFERENCE = """\
| framework | agent, 1 tool, 5 tool calls: µs/run |
|---|---:|
| OpenAI Agents SDK 0.24 | 18,263 |
| LangGraph 1.2 | 19,720 |
| Pydantic AI 2.68 | 21,452 |
"""
NOTES = """\
Where llmflow's extra time goes (cProfile, `--profile`, and the parts above):

- `GatewayModel.get_response` (src/llmflow/models/agents_adapter.py) still converts the whole
  history on every turn (the Runner hands it over as new dicts each time), but directly to
  gateway `Message`s (`_plain_messages`) for the common items (text messages, function calls
  and outputs, the assistant's text), about 0.5 µs an item; other items go through the SDK's
  `Converter.items_to_messages` as before. The answer is built as the SDK's output items
  directly (`_output_items`), with no `ChatCompletionMessage` and converter in between. The
  rest of a model call is `Gateway.complete` (src/llmflow/models/gateway.py) and the SDK's
  `Usage`.
- `AgentStep.sdk_agent` (src/llmflow/steps/agent.py) builds the SDK `Agent`, its tools and
  handoffs once, on the step's first run; what differs between runs (gateway, model name,
  contexts, tool-call numbering) is looked up at call time in the run in progress, which
  `AgentStep.run` puts in a context variable.
- Each tool call runs as a `_ToolCall` step (the run's record of it). The SDK resolves the
  type hints of a tool's `on_invoke_tool` on every call (agents/tool.py, `get_type_hints`):
  the agent step's is a lambda, with none to resolve, so it costs less than the SDK's own
  `function_tool` wrapper, whose string annotations are evaluated each time (which is why the
  agent step can be faster than the raw Runner on `GatewayModel`).
"""
HEAD = "| measure | llmflow | baseline | ratio | target | met |\n|---|---:|---:|---:|---|---|\n"
Row = tuple[str, str, str, str, str, str]


CALLS = [0]  # tool calls made, for the check


async def lookup(key: str) -> str:
    """Look a key up."""
    CALLS[0] += 1
    return f"{key}=42"


# -- the scripted models: the same turns, in each framework's terms ------------------------------


def llmflow_reply(request: ModelRequest) -> str | ModelResponse:
    """llmflow's scripted model: a tool call while fewer than 5 tool results, then the answer."""
    done = sum(m.role == "tool" for m in request.messages)
    if done < TOOL_CALLS:
        call = ToolCall(id=f"call_{done}", name="lookup", arguments=json.dumps({"key": "k"}))
        return ModelResponse(
            tool_calls=[call], usage=Usage(input_tokens=10, output_tokens=5), model="scripted"
        )
    return ANSWER


class MinimalModel(agents.Model):
    """The least an SDK model can do: count the tool results so far, answer with new items."""

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],
        model_settings: ModelSettings,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        *args: Any,
        **kwargs: Any,
    ) -> agents.ModelResponse:
        done = (
            0 if isinstance(input, str) else sum(_type(i) == "function_call_output" for i in input)
        )
        item: Any
        if done < TOOL_CALLS:
            item = ResponseFunctionToolCall(
                id=f"fc_{done}",
                call_id=f"call_{done}",
                type="function_call",
                name="lookup",
                arguments=json.dumps({"key": "k"}),
            )
        else:
            item = ResponseOutputMessage(
                id="msg_1",
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text=ANSWER, annotations=[])],
            )
        usage = agents.Usage(requests=1, input_tokens=10, output_tokens=5, total_tokens=15)
        return agents.ModelResponse(output=[item], usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the benchmark does not stream")


def _type(item: Any) -> Any:
    return item.get("type") if isinstance(item, dict) else getattr(item, "type", None)


def sdk_script() -> list[Any]:
    calls = [
        [sdk_function_call("lookup", {"key": "k"}, call_id=f"call_{i}")] for i in range(TOOL_CALLS)
    ]
    return [*calls, [assistant_message(ANSWER)]]


# -- the runs ------------------------------------------------------------------------------------


@dataclass
class Setup:
    step: AgentStep
    ctx: RunContext
    sdk_agent: Agent[Any]
    runs: dict[str, Callable[[], Awaitable[object]]]


def setup() -> Setup:
    step = agent("lookup-agent", instructions=INSTRUCTIONS, tools=[lookup])
    ctx = RunContext(gateway=scripted_gateway(ScriptedModel(llmflow_reply)))
    sdk_agent = Agent(
        name="lookup-agent",
        instructions=INSTRUCTIONS,
        tools=[function_tool(lookup)],
        model=MinimalModel(),
        model_settings=ModelSettings(temperature=0.0),
    )
    adapter_agent = sdk_agent.clone(model=GatewayModel(ctx.gateway))

    async def llmflow_run() -> object:
        return await step("hi", ctx)

    async def sdk_run() -> object:
        return (await Runner.run(sdk_agent, "hi", run_config=NO_TRACING)).final_output

    async def adapter_run() -> object:
        return (await Runner.run(adapter_agent, "hi", run_config=NO_TRACING)).final_output

    async def sdk_testing_run() -> object:
        scripted = sdk_agent.clone(model=SDKScriptedModel(sdk_script()))
        return (await Runner.run(scripted, "hi", run_config=NO_TRACING)).final_output

    runs: dict[str, Callable[[], Awaitable[object]]] = {
        "llmflow": llmflow_run,
        "sdk": sdk_run,
        "adapter": adapter_run,
        "sdk-testing": sdk_testing_run,
    }
    return Setup(step, ctx, sdk_agent, runs)


async def check(s: Setup) -> None:
    """Every variant answers, after exactly TOOL_CALLS tool calls."""
    for name, run in s.runs.items():
        before = CALLS[0]
        output = await run()
        assert output == ANSWER, (name, output)
        assert CALLS[0] - before == TOOL_CALLS, (name, CALLS[0] - before)


async def per_run_us(run: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """µs per run over RUNS runs: wall time, and this process's CPU time (which other
    processes on a busy machine do not inflate)."""
    gc.collect()  # each block starts clean: no variant pays for another's garbage
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(RUNS):
        await run()
    return (time.perf_counter() - w0) / RUNS * 1e6, (time.process_time() - c0) / RUNS * 1e6


async def micro_us(fn: Callable[[], Awaitable[object]], n: int = 2_000) -> float:
    """The best of ROUNDS // 3 rounds of `n` awaits of `fn()`, in µs per await."""
    times = []
    for _ in range(max(3, ROUNDS // 3)):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return min(times)


async def parts(s: Setup) -> dict[str, float]:
    """Where the agent step's extra time goes: getting the SDK agent of a run (built on the
    first, then reused), and one model call on the last turn's history (11 items), on
    GatewayModel vs the minimal model."""
    history: list[Any] = []

    class Recording(MinimalModel):
        async def get_response(self, *args: Any, **kwargs: Any) -> agents.ModelResponse:
            history[:] = [kwargs]
            return await super().get_response(*args, **kwargs)

    await Runner.run(s.sdk_agent.clone(model=Recording()), "hi", run_config=NO_TRACING)
    last = history[0]
    gateway_model, minimal = GatewayModel(s.ctx.gateway, observer=s.ctx), MinimalModel()

    async def build() -> object:
        return s.step.sdk_agent()

    return {
        "build": await micro_us(build),
        "gateway_call": await micro_us(lambda: gateway_model.get_response(**last)),
        "minimal_call": await micro_us(lambda: minimal.get_response(**last)),
    }


async def measure() -> list[Row]:
    s = setup()
    await check(s)
    for run in s.runs.values():  # warm up: imports, caches, schema building
        for _ in range(20):
            await run()
    wall: dict[str, list[float]] = {name: [] for name in s.runs}
    cpu: dict[str, list[float]] = {name: [] for name in s.runs}
    names = list(s.runs)
    for index in range(ROUNDS):  # the order rotates, so no variant always goes first
        for name in names[index % len(names) :] + names[: index % len(names)]:
            w, c = await per_run_us(s.runs[name])
            wall[name].append(w)
            cpu[name].append(c)
    best = {name: min(t) for name, t in wall.items()}
    median = {name: statistics.median(t) for name, t in wall.items()}
    best_cpu = {name: min(t) for name, t in cpu.items()}
    paired = statistics.median(
        a / b for a, b in zip(wall["llmflow"], wall["sdk"], strict=True)
    )  # each round's two blocks ran a second apart: the ratio of the pair is the least noisy
    us = await parts(s)

    def row(name: str, ours: float, base: float | None, target: str, met: bool | None) -> Row:
        verdict = "—" if met is None else ("yes" if met else "no")
        if base is None:
            return (name, f"{ours:,.0f}", "—", "—", target, verdict)
        return (name, f"{ours:,.0f}", f"{base:,.0f}", f"{ours / base:,.2f}", target, verdict)

    target = f"≤ {TARGET:.2f}×"
    return [
        row("agent, 1 tool × 5 calls: µs/run, best wall (vs the raw SDK Runner)",
            best["llmflow"], best["sdk"], target, best["llmflow"] <= TARGET * best["sdk"]),
        row("same, median wall", median["llmflow"], median["sdk"], target,
            median["llmflow"] <= TARGET * median["sdk"]),
        row("same, best CPU time of the process", best_cpu["llmflow"], best_cpu["sdk"], target,
            best_cpu["llmflow"] <= TARGET * best_cpu["sdk"]),
        ("same, median of the rounds' paired ratios (wall)", "", "", f"{paired:.2f}", target,
         "yes" if paired <= TARGET else "no"),
        row("breakdown: raw Runner + tool on GatewayModel, best wall (vs the raw SDK)",
            best["adapter"], best["sdk"], "—", None),
        row("breakdown: the agent step, best wall (vs raw Runner on GatewayModel)",
            best["llmflow"], best["adapter"], "—", None),
        row("part: one model call, last turn: µs, GatewayModel (vs the minimal model)",
            us["gateway_call"], us["minimal_call"], "—", None),
        row("part: AgentStep.sdk_agent, the SDK agent of each run (built once): µs",
            us["build"], None, "—", None),
        row("context: SDK on agents.testing.ScriptedModel, best wall (vs minimal model)",
            best["sdk-testing"], best["sdk"], "—", None),
    ]  # fmt: skip


def profile() -> None:
    """cProfile the llmflow runs; print the top functions by own time, then llmflow's own."""

    async def many() -> None:
        s = setup()
        await check(s)
        run = s.runs["llmflow"]
        for _ in range(RUNS * 12):
            await run()

    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(many())
    profiler.disable()
    for title, restrict in (("all, by own time", 30), ("llmflow's own", "llmflow")):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
        stats.print_stats(restrict)
        print(f"\n== {title} ==\n{out.getvalue()}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumtime").print_stats("llmflow", 25)
    print(f"\n== llmflow's own, by cumulative time ==\n{out.getvalue()}")


def main() -> None:
    if "--profile" in sys.argv:
        profile()
        return
    rows = asyncio.run(measure())
    table = HEAD + "".join(f"| {' | '.join(r)} |\n" for r in rows)
    print(f"{'measure':<76} {'llmflow':>8} {'baseline':>8} {'ratio':>6}  target  met")
    for r in rows:
        print(f"{r[0]:<76} {r[1]:>8} {r[2]:>8} {r[3]:>6}  {r[4]:<7} {r[5]}")
    RESULTS.write_text(
        f"# Agent overhead\n\n"
        f"Measured {datetime.date.today()} by `bench/agent_overhead.py` on Python "
        f"{platform.python_version()} ({platform.machine()}, {platform.system()}), OpenAI "
        f"Agents SDK {agents.__version__}. An agent with one tool; a scripted model calls the "
        f"tool {TOOL_CALLS} times (one call a turn), then answers: {TOOL_CALLS + 1} model "
        f"calls and {TOOL_CALLS} tool calls a run, no sleeps. Tracing is off on both sides. "
        f"{ROUNDS} rounds of a block of {RUNS} runs of each variant, interleaved in one "
        f"process, the order rotating; best and median wall time, best CPU time of the "
        f"process (not inflated by other processes), and the median of the rounds' paired "
        f"ratios.\n\n"
        f"- llmflow: the `agent(...)` step, `await step(input, RunContext(gateway="
        f"scripted_gateway(model)))`: the SDK Runner on `GatewayModel`, each model call "
        f"through the gateway, each tool call a recorded step.\n"
        f"- baseline: the raw SDK Runner, an `agents.Agent` with an `agents.function_tool` "
        f"and a minimal scripted `agents.Model` returning the same output items.\n"
        f"- breakdown: the raw Runner and tool on llmflow's `GatewayModel` (the gateway, no "
        f"agent step and no tool-call steps) splits the difference in two.\n\n"
        f"{table}\n"
        f"The ratio is llmflow / baseline (≤ 1 is better).\n\n{NOTES}\n"
        f"## Other frameworks, for context\n\n"
        f"Measured earlier on this machine with another harness; not re-measured by this "
        f"script, so compare them with each other, not with the figures above.\n\n{REFERENCE}",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
