"""What users run: `llmflow run`'s default path against the lean path and plain asyncio.

Configurations, all in this process, on a fake model (a `ScriptedModel` served as provider
`fake`, so the gateway applies the *default* limits, as for a real provider: no explicit
limit, adaptive concurrency), response cache off:

  asyncio   the same work as plain coroutines (`asyncio.sleep` for a model call)
  lean      `llmflow.run(step, input)`: in-process, no run store, no checkpoints
  default   what `llmflow run` does unless told otherwise (`cli/durable.py` `_drive`): each
            harness run is one durable llmflow run of one item through
            `durable.run_durable` (no step waits for a person, so the engine runs without
            DBOS, as `llmflow run` does, and every model call is checkpointed in the run
            store by the call ledger: its record committed when it starts, its output with
            its end record), default provider limits
  no-durable  `llmflow run --no-durable`: `run_batch` recorded in a `RunStore`

Scenarios:

  a. 3-step chain (llm steps, instant answers): CPU µs per run (the process's CPU time,
     DBOS's threads included) and wall µs per run, runs one after another
  b. fan-out: `parallel` with 200 llm-step sections, 100 ms answers: wall ms per run
  c. 5,000 one-step runs, 100 in flight, 50 ms answers: runs per second
  d. agent: an agent step with one tool that the scripted model calls 5 times (6 model
     calls, 5 tool calls, instant answers): CPU µs per run; the baseline is the raw OpenAI
     Agents SDK Runner on a minimal scripted model (`bench/agent_overhead.py`'s)
  e. batch: one run of 5,000 items × 3 llm steps, 20 ms answers, 64 items in flight:
     items per second, durable (default) vs --no-durable

Run: .venv/bin/python bench/default_path.py [--quick] [--profile SCENARIO]
(rewrites bench/RESULTS-default-path.md; --quick runs smaller sizes, 1,000 runs and items
instead of 5,000, fewer rounds, and says so in the results;
--profile prints a cProfile of one scenario's default configuration: a, b, c, d or e)
"""

from __future__ import annotations

import asyncio
import cProfile
import datetime
import gc
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

QUICK = "--quick" in sys.argv
HOME = tempfile.mkdtemp(prefix="llmflow-bench-")
os.environ["LLMFLOW_HOME"] = HOME  # before llmflow reads its settings

from agent_overhead import INSTRUCTIONS, NO_TRACING, MinimalModel, llmflow_reply  # noqa: E402
from agents import Agent, ModelSettings, Runner, function_tool  # noqa: E402

from llmflow import durable  # noqa: E402
from llmflow.durable.batch import RunSpec, fingerprint, keys_digest, run_durable  # noqa: E402
from llmflow.ids import new_id  # noqa: E402
from llmflow.models.gateway import Gateway  # noqa: E402
from llmflow.patterns.chain import chain  # noqa: E402
from llmflow.patterns.parallel import parallel  # noqa: E402
from llmflow.runtime.runner import Item, Workflow, run, run_batch  # noqa: E402
from llmflow.settings import Settings  # noqa: E402
from llmflow.steps.agent import agent  # noqa: E402
from llmflow.steps.base import Step  # noqa: E402
from llmflow.steps.llm import llm  # noqa: E402
from llmflow.store.sqlite import RunStore  # noqa: E402
from llmflow.testing import ScriptedModel  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS-default-path.md")
HISTORY = """## The default configuration over time (this machine)

| scenario | issue 15 filed | calls as DBOS steps (b3e94c1, quick) | ledger (15d398d) | now |
|---|---:|---:|---:|---|
| a. chain, CPU µs/run | 13,499 | 8,631 | 1,298 | above |
| b. fan-out, wall ms | 1,577 | 629 | 129 | above |
| c. one-step runs/s, 100 in flight (× lean) | 111 (0.06) | 146 (0.08) | 1,145 (0.62) | above |
| d. agent, × raw SDK Runner | 5.9 | 3.07 | 1.61 | above |
| e. batch, × --no-durable | 0.29 | 0.09 | 0.81 | above |

From the second column to the third: model calls checkpointed in the run store with their own
records instead of as two DBOS transactions each, and items that no step can pause for an
approval run without a DBOS workflow (two more transactions each). From the third to now:
fewer statements, commits and bytes per call (calls counted in the totals once they end, the
end record not rewriting the prompt or the row's indexes, the run's start and last item
committed with other writes, rarer WAL checkpoints, 2 KB pages, one redaction pass per row,
one-pass checkpoint dumps). See bench/PROFILE-default.md.
"""
QUICK_NOTE = (
    " **Quick sizes** (`--quick`: 1,000 one-step runs and 1,000 batch items instead of "
    "5,000, fewer runs per round). Every figure is a ratio between configurations measured "
    "one after another in this process, under the same load."
)


def load_note() -> str:
    """The machine's load when the results were written: absolute times depend on it."""
    one, five, _ = os.getloadavg()
    cpus = os.cpu_count()
    return f" Load average at the end: {one:.1f} (1 min), {five:.1f} (5 min), on {cpus} CPUs."


CHAIN_RUNS = 40 if QUICK else 200
CHAIN_ROUNDS = 3
FAN, FAN_LATENCY, FAN_ROUNDS = 200, 0.1, 3 if QUICK else 7
RUNS, IN_FLIGHT, RUN_LATENCY = (1_000 if QUICK else 5_000), 100, 0.05
AGENT_RUNS, AGENT_ROUNDS, TOOL_CALLS = (10 if QUICK else 40), 3, 5
BATCH, BATCH_STEPS, BATCH_LATENCY, BATCH_IN_FLIGHT = (1_000 if QUICK else 5_000), 3, 0.02, 64


class FakeModel(ScriptedModel):
    """The fake provider: answers "ok" (or by `reply`) after `latency_s`."""

    provider = "fake"


def gateway(reply: Any = "ok", latency_s: float = 0.0) -> Gateway:
    """A gateway with the default settings and limits, serving the fake model."""
    gw = Gateway(Settings(model="fake"))
    gw.register("fake", FakeModel(reply if callable(reply) else lambda r: reply,
                                  latency_s=latency_s))  # fmt: skip
    return gw


class Default:
    """`llmflow run`'s default path, one process: the durable engine set up once (as the CLI
    does per command: without DBOS, since no step here waits for a person), one run store,
    each run a durable run of its items."""

    def __init__(self) -> None:
        durable.configure(durable.DurableSettings(home=Path(HOME)))
        self.store = RunStore(Path(HOME) / "llmflow.db")

    async def run(self, wf: Workflow, items: list[Item], gw: Gateway, concurrency: int) -> None:
        spec = RunSpec(
            run_id=new_id(), workflow=wf.name, source=None, items_total=len(items),
            keys_digest=keys_digest(items), code=fingerprint(wf.step),
            concurrency=concurrency, cache=False,
        )  # fmt: skip
        result = await run_durable(wf, items, spec=spec, gateway=gw, store=self.store)
        assert result.status == "ok", [r.error for r in result.results if r.error]

    async def no_durable(
        self, wf: Workflow, items: list[Item], gw: Gateway, concurrency: int
    ) -> None:
        result = await run_batch(wf, items, gateway=gw, concurrency=concurrency,
                                 store=self.store, run_id=new_id())  # fmt: skip
        assert result.status == "ok", [r.error for r in result.results if r.error]


async def per_run(fn: Callable[[], Awaitable[object]], n: int, rounds: int) -> tuple[float, float]:
    """Best over `rounds` of (CPU µs, wall µs) per run, `n` runs one after another."""
    await fn()  # warm up
    cpu, wall = [], []
    for _ in range(rounds):
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            await fn()
        cpu.append((time.process_time() - c0) / n * 1e6)
        wall.append((time.perf_counter() - w0) / n * 1e6)
    return min(cpu), min(wall)


async def walls(fn: Callable[[], Awaitable[object]], rounds: int) -> tuple[float, float]:
    """Best and median wall ms of one await of `fn()`."""
    await fn()
    times = []
    for _ in range(rounds):
        gc.collect()
        w0 = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - w0) * 1e3)
    return min(times), statistics.median(times)


async def throughput(one: Callable[[], Awaitable[object]], n: int, in_flight: int) -> float:
    """Runs per second of `n` runs of `one()`, `in_flight` at a time."""
    gate = asyncio.Semaphore(in_flight)

    async def bounded() -> None:
        async with gate:
            await one()

    gc.collect()
    w0 = time.perf_counter()
    await asyncio.gather(*(bounded() for _ in range(n)))
    return n / (time.perf_counter() - w0)


Row = tuple[str, str, str, str, str, str]
ROWS: list[Row] = []


def row(what: str, config: str, value: float, unit: str, asyncio_value: float | None,
        lean: float | None, target: str = "—", met: bool | None = None) -> None:  # fmt: skip
    ratio = lambda base: "—" if not base else f"{value / base:,.2f}"  # noqa: E731
    verdict = "—" if met is None else ("**yes**" if met else "no")
    cells = (what, config, f"{value:,.0f} {unit}", ratio(asyncio_value), ratio(lean),
             f"{target} {verdict}" if target != "—" else "—")  # fmt: skip
    ROWS.append(cells)
    print(" | ".join(cells), flush=True)


# -- the scenarios -------------------------------------------------------------------------


async def scenario_chain(d: Default) -> None:
    steps = [llm(f"s{i}", instructions="Echo.", prompt="{{ input }}") for i in range(3)]
    wf = Workflow(name="chain", step=chain("chain", *steps))
    gw, items = gateway(), [Item("0", "hello")]

    async def fake_call(text: str) -> str:
        return "ok"

    async def plain() -> None:
        text = "hello"
        for _ in range(3):
            text = await fake_call(text)

    base = await per_run(plain, CHAIN_RUNS * 10, CHAIN_ROUNDS)
    lean = await per_run(lambda: run(wf.step, "hello", gateway=gw), CHAIN_RUNS, CHAIN_ROUNDS)
    nod = await per_run(lambda: d.no_durable(wf, items, gw, 4), CHAIN_RUNS, CHAIN_ROUNDS)
    dflt = await per_run(lambda: d.run(wf, items, gw, 4), CHAIN_RUNS, CHAIN_ROUNDS)
    what = "a. 3-step chain, CPU µs/run"
    row(what, "plain asyncio", base[0], "µs", base[0], None)
    row(what, "lean", lean[0], "µs", base[0], lean[0])
    row(what, "default, --no-durable", nod[0], "µs", base[0], lean[0])
    row(what, "**default**", dflt[0], "µs", base[0], lean[0], "≤ 1,000 µs", dflt[0] <= 1000)
    what = "a. 3-step chain, wall µs/run"
    row(what, "lean", lean[1], "µs", base[1], lean[1])
    row(what, "default, --no-durable", nod[1], "µs", base[1], lean[1])
    row(what, "default", dflt[1], "µs", base[1], lean[1])


async def scenario_fanout(d: Default) -> None:
    sections = [llm(f"worker-{i}", instructions="Answer.") for i in range(FAN)]
    wf = Workflow(name="fan", step=parallel("fan", sections))
    gw, items = gateway(latency_s=FAN_LATENCY), [Item("0", "the task")]

    async def plain() -> None:
        await asyncio.gather(*(asyncio.sleep(FAN_LATENCY) for _ in range(FAN)))

    base = await walls(plain, FAN_ROUNDS)
    lean = await walls(lambda: run(wf.step, "the task", gateway=gw), FAN_ROUNDS)
    nod = await walls(lambda: d.no_durable(wf, items, gw, 4), FAN_ROUNDS)
    dflt = await walls(lambda: d.run(wf, items, gw, 4), FAN_ROUNDS)
    for label, i in (("best", 0), ("median", 1)):
        what = f"b. 200-way fan-out, 100 ms calls, wall ms ({label})"
        row(what, "plain asyncio", base[i], "ms", base[i], None)
        row(what, "lean", lean[i], "ms", base[i], lean[i])
        row(what, "default, --no-durable", nod[i], "ms", base[i], lean[i])
        row(what, "**default**", dflt[i], "ms", base[i], lean[i], "≤ 150 ms", dflt[i] <= 150)


async def scenario_throughput(d: Default) -> None:
    step = llm("answer", instructions="Answer.", prompt="{{ input }}")
    wf = Workflow(name="one", step=step)
    gw, items = gateway(latency_s=RUN_LATENCY), [Item("0", "hello")]

    base = await throughput(lambda: asyncio.sleep(RUN_LATENCY), RUNS, IN_FLIGHT)
    lean = await throughput(lambda: run(step, "hello", gateway=gw), RUNS, IN_FLIGHT)
    nod = await throughput(lambda: d.no_durable(wf, items, gw, 1), RUNS, IN_FLIGHT)
    dflt = await throughput(lambda: d.run(wf, items, gw, 1), RUNS, IN_FLIGHT)
    what = f"c. {RUNS:,} one-step runs, {IN_FLIGHT} in flight, 50 ms calls, runs/s"
    row(what, "plain asyncio", base, "runs/s", base, None)
    row(what, "lean", lean, "runs/s", base, lean)
    row(what, "default, --no-durable", nod, "runs/s", base, lean)
    row(what, "**default**", dflt, "runs/s", base, lean, "≥ 0.50 × lean", dflt >= 0.5 * lean)


async def lookup(key: str) -> str:
    """Look a key up."""
    return f"{key}=42"


async def scenario_agent(d: Default) -> None:
    step: Step[Any, Any] = agent("lookup-agent", instructions=INSTRUCTIONS, tools=[lookup])
    wf = Workflow(name="agent", step=step)
    gw, items = gateway(llmflow_reply), [Item("0", "hi")]
    sdk_agent = Agent(name="lookup-agent", instructions=INSTRUCTIONS,
                      tools=[function_tool(lookup)], model=MinimalModel(),
                      model_settings=ModelSettings(temperature=0.0))  # fmt: skip

    async def sdk() -> None:
        await Runner.run(sdk_agent, "hi", run_config=NO_TRACING)

    base = await per_run(sdk, AGENT_RUNS, AGENT_ROUNDS)
    lean = await per_run(lambda: run(step, "hi", gateway=gw), AGENT_RUNS, AGENT_ROUNDS)
    nod = await per_run(lambda: d.no_durable(wf, items, gw, 1), AGENT_RUNS, AGENT_ROUNDS)
    dflt = await per_run(lambda: d.run(wf, items, gw, 1), AGENT_RUNS, AGENT_ROUNDS)
    what = f"d. agent, {TOOL_CALLS} tool calls, CPU µs/run (ratio: vs the raw SDK Runner)"
    row(what, "raw Agents SDK Runner", base[0], "µs", base[0], None)
    row(what, "lean", lean[0], "µs", base[0], lean[0])
    row(what, "default, --no-durable", nod[0], "µs", base[0], lean[0])
    row(what, "**default**", dflt[0], "µs", base[0], lean[0], "≤ 1.2 × SDK",
        dflt[0] <= 1.2 * base[0])  # fmt: skip


async def scenario_batch(d: Default) -> None:
    steps = [llm(f"s{i}", instructions="Echo.", prompt="{{ input }}") for i in range(BATCH_STEPS)]
    wf = Workflow(name="batch", step=chain("batch", *steps))
    gw = gateway(latency_s=BATCH_LATENCY)
    items = [Item(f"{i}", f"item {i}") for i in range(BATCH)]

    async def plain_item() -> None:
        for _ in range(BATCH_STEPS):
            await asyncio.sleep(BATCH_LATENCY)

    base = await throughput(plain_item, BATCH, BATCH_IN_FLIGHT)
    w0 = time.perf_counter()
    await d.no_durable(wf, items, gw, BATCH_IN_FLIGHT)
    nod = BATCH / (time.perf_counter() - w0)
    w0 = time.perf_counter()
    await d.run(wf, items, gw, BATCH_IN_FLIGHT)
    dflt = BATCH / (time.perf_counter() - w0)
    what = (f"e. batch, {BATCH:,} items × {BATCH_STEPS} steps, 20 ms calls, "
            f"{BATCH_IN_FLIGHT} in flight, items/s (ratio 2: vs --no-durable)")  # fmt: skip
    row(what, "plain asyncio", base, "items/s", base, None)
    row(what, "default, --no-durable", nod, "items/s", base, nod)
    row(what, "**default** (durable)", dflt, "items/s", base, nod, "≥ 0.80 × --no-durable",
        dflt >= 0.8 * nod)  # fmt: skip


SCENARIOS = {"a": scenario_chain, "b": scenario_fanout, "c": scenario_throughput,
             "d": scenario_agent, "e": scenario_batch}  # fmt: skip


def profile(name: str) -> None:
    """cProfile (main thread) of scenario `name`, whole."""
    d = Default()
    prof = cProfile.Profile(time.thread_time)
    prof.enable()
    asyncio.run(SCENARIOS[name](d))
    prof.disable()
    durable.shutdown()
    pstats.Stats(prof).sort_stats("tottime").print_stats(40)


def main() -> None:
    if "--profile" in sys.argv:
        profile(sys.argv[sys.argv.index("--profile") + 1])
        return
    d = Default()
    head = "| scenario | configuration | result | ratio vs baseline | ratio vs lean | target |"
    print(head)
    for scenario in SCENARIOS.values():
        asyncio.run(scenario(d))
    durable.shutdown()
    table = head + "\n|---|---|---:|---:|---:|---|\n" + "".join(f"| {' | '.join(r)} |\n"
                                                            for r in ROWS)  # fmt: skip
    RESULTS.write_text(
        f"# The default path (`llmflow run`) against the lean path and plain asyncio\n\n"
        f"Measured {datetime.date.today()} by `bench/default_path.py` on Python "
        f"{platform.python_version()} ({platform.machine()}, {platform.system()}, "
        f"{os.cpu_count()} CPUs, shared with other work), all in one process, one after "
        f"another. The model is fake (`ScriptedModel` served as provider `fake`, so the "
        f"gateway applies its default limits); the response cache is off.\n\n"
        f"Configurations:\n\n"
        f"- **plain asyncio**: the same work as coroutines, `asyncio.sleep` for a call "
        f"(scenario d: the raw OpenAI Agents SDK Runner on a minimal scripted model).\n"
        f"- **lean**: `llmflow.run(step, input)`, in-process, no run store, no checkpoints.\n"
        f"- **default**: what `llmflow run` does unless told otherwise: each harness run one "
        f"durable llmflow run (`durable.run_durable`). No step of these workflows waits for a "
        f"person, so, as `llmflow run` does, the engine runs without DBOS: "
        f"each model call is checkpointed in the run store by the call ledger "
        f"(`durable/ledger.py`: its record committed before it is sent, its output with its "
        f"end record, commits shared by the calls of one turn of the event loop), each "
        f"item's result with its rows; default provider limits (adaptive, from 256).\n"
        f"- **default, --no-durable**: `run_batch` recorded in the run store.\n\n"
        f"CPU µs is the process's CPU time (all its threads) per run, best of "
        f"{CHAIN_ROUNDS} rounds of {CHAIN_RUNS} runs (agent: {AGENT_RUNS}); fan-out rounds: "
        f"{FAN_ROUNDS}; throughput and batch: one pass each."
        f"{QUICK_NOTE if QUICK else ''}{load_note()}\n\n{table}\n"
        f"Ratios are result / baseline and result / lean (for times lower is better, for "
        f"rates higher is better). See bench/PROFILE-default.md for where the default "
        f"path's time goes.\n\n{HISTORY}",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
