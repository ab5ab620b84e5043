from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from llmflow import Divert, RunContext, RunHooks, StepError, Stop, assign, chain, code, gate, run
from llmflow.testing import ScriptedModel, scripted_gateway


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.steps: list[tuple[str, str, Any, str | None]] = []

    def on_step_end(
        self, ctx: RunContext, *, step: Any, output: Any, error: Any, **kw: Any
    ) -> None:
        self.steps.append((ctx.path, step.kind, output, type(error).__name__ if error else None))


def gw() -> Any:
    return scripted_gateway(ScriptedModel())


async def test_chain_runs_steps_in_order_with_sync_async_and_ctx_functions() -> None:
    async def double(x: int) -> int:
        return x * 2

    def add_path(x: int, ctx: RunContext) -> str:
        return f"{x}@{ctx.path}"

    hooks = Recorder()
    flow = chain("flow", code(lambda x: x + 1, name="inc"), code(double), code(add_path))
    assert await run(flow, 1, gateway=gw(), hooks=[hooks]) == "4@flow/add_path"
    assert [s[0] for s in hooks.steps] == ["flow/inc", "flow/double", "flow/add_path", "flow"]
    assert hooks.steps[-1][1] == "chain"


async def test_gate_false_stops_with_the_value_so_far() -> None:
    hooks = Recorder()
    flow = chain(
        "flow",
        code(lambda x: x + 1, name="inc"),
        gate("small", lambda x: x < 2),
        code(lambda x: x * 100, name="big"),
    )
    assert await run(flow, 5, gateway=gw(), hooks=[hooks]) == 6
    assert "flow/big" not in [s[0] for s in hooks.steps]
    gate_record = next(s for s in hooks.steps if s[0] == "flow/small")
    assert isinstance(gate_record[2], Stop)


async def test_gate_stop_can_set_the_output_and_divert_finishes_elsewhere() -> None:
    flow = chain("f", gate("g", lambda x: Stop("enough", output="stopped")), code(str, name="s"))
    assert await run(flow, 1, gateway=gw()) == "stopped"

    fallback = code(lambda x: f"fallback {x}", name="fallback")
    flow = chain(
        "f",
        gate("g", lambda x: x > 0 or Divert(fallback, "negative")),
        code(lambda x: f"main {x}", name="main"),
    )
    assert await run(flow, 3, gateway=gw()) == "main 3"
    assert await run(flow, -3, gateway=gw()) == "fallback -3"


async def test_a_gate_returning_nonsense_names_the_gate() -> None:
    flow = chain("f", gate("g", lambda x: "yes"))
    with pytest.raises(StepError, match=r"'f/g'.*must return"):
        await run(flow, 1, gateway=gw())


class State(BaseModel):
    text: str
    length: int | None = None


async def test_assign_stores_a_step_output_on_the_state() -> None:
    flow = chain("f", assign("length", code(lambda s: len(s.text), name="measure")))
    out = await run(flow, State(text="hello"), gateway=gw())
    assert out == State(text="hello", length=5)
    out = await run(chain("f", assign("n", code(lambda d: 1, name="one"))), {"a": 0}, gateway=gw())
    assert out == {"a": 0, "n": 1}


async def test_a_failing_code_step_raises_an_error_naming_its_path() -> None:
    def boom(x: int) -> int:
        raise KeyError("missing")

    hooks = Recorder()
    flow = chain("outer", chain("inner", code(boom)))
    with pytest.raises(StepError) as info:
        await run(flow, 1, gateway=gw(), hooks=[hooks])
    assert info.value.path == "outer/inner/boom"
    assert "KeyError" in str(info.value)
    # every enclosing step is recorded as failed too
    assert [(s[0], s[3]) for s in hooks.steps] == [
        ("outer/inner/boom", "StepError"),
        ("outer/inner", "StepError"),
        ("outer", "StepError"),
    ]


def test_bad_chains_are_rejected_when_built() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        chain("empty")
    with pytest.raises(ValueError, match="unique"):
        chain("dup", code(str, name="a"), code(str, name="a"))
    with pytest.raises(ValueError, match="no '/'"):
        code(str, name="a/b")
