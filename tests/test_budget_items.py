"""Budgets are spent on whole items: at 100 items in flight a budget finishes as many items
as at 4 (within one), leaves none half-done, says how many it did not start and what they
would need, and a resumed run's budget counts what it spent before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmflow import Budget, Item, RunStore, Workflow, chain, llm, run_batch
from llmflow.models.client import ModelRequest, ModelResponse, Usage
from llmflow.runtime.runner import BatchRun
from llmflow.steps.context import RunContext
from llmflow.testing import ScriptedModel, scripted_gateway

TOKENS_PER_CALL = 30
CALLS_PER_ITEM = 3


def _answer(request: ModelRequest) -> ModelResponse:
    return ModelResponse(text="ok", usage=Usage(input_tokens=20, output_tokens=10))


class SlowModel(ScriptedModel):
    """Answers after a moment, so that many items are in flight at once."""

    async def complete(self, model: str, request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(0.002)
        return await super().complete(model, request)


def _workflow() -> Workflow:
    steps = [llm(f"s{i}", instructions=f"Step {i}.", max_tokens=10) for i in range(CALLS_PER_ITEM)]
    return Workflow(name="three", step=chain("three", *steps))


async def _completed(concurrency: int, items: int = 300, worth: int = 50) -> tuple[int, Any]:
    model = SlowModel(_answer)
    # Reserving a call books prompt + max_tokens; the budget holds `worth` items as spent.
    budget = Budget(max_tokens=worth * CALLS_PER_ITEM * TOKENS_PER_CALL + 5)
    batch = await run_batch(
        _workflow(), [Item(str(i), f"text {i}") for i in range(items)],
        gateway=scripted_gateway(model), concurrency=concurrency, budget=budget,
    )  # fmt: skip
    assert not batch.failed, [str(r.error) for r in batch.failed][:3]  # nothing half-done
    return len(batch.results), batch


async def test_a_budget_finishes_whole_items_whatever_the_concurrency() -> None:
    wide, batch = await _completed(100)
    narrow, _ = await _completed(4)
    assert abs(wide - narrow) <= 1, (wide, narrow)
    assert wide >= 49
    assert batch.status == "stopped"
    assert batch.not_started == 300 - wide
    assert f"{batch.not_started} items were not started" in (batch.error or "")
    assert "--max-tokens" in (batch.error or "")


async def test_without_a_budget_every_item_runs() -> None:
    batch = await run_batch(
        _workflow(), [Item(str(i), "x") for i in range(20)],
        gateway=scripted_gateway(ScriptedModel(_answer)), concurrency=8,
    )  # fmt: skip
    assert len(batch.results) == 20 and batch.status == "ok" and batch.not_started == 0


async def test_a_resumed_run_counts_what_it_spent_before(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    first = await run_batch(
        _workflow(), [Item("a", "x")], gateway=scripted_gateway(ScriptedModel(_answer)),
        store=store, run_id="r1",
    )  # fmt: skip
    assert first.status == "ok"
    budget = Budget(max_tokens=1000)
    resumed = BatchRun(
        workflow=_workflow(), items=[Item("a", "x")],
        base=RunContext(gateway=scripted_gateway(ScriptedModel(_answer)), run_id="r1",
                        budgets=(budget,)),
        store=store,
    )  # fmt: skip
    resumed.start(model="scripted", source=None, resuming=True)
    assert budget.requests == CALLS_PER_ITEM
    assert budget.spent_tokens == CALLS_PER_ITEM * TOKENS_PER_CALL
    store.close()


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMFLOW_MODEL", raising=False)


def test_a_money_budget_on_a_hosted_name_priced_as_self_hosted_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmflow.cli import main

    from .fake_openai_server import serve

    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.txt").write_text("i0|refund")
    with serve(lambda body: "ok") as (url, received):
        flow = "tests.durable_flows:build"
        args = ["run", flow, str(inbox), "--base-url", url, "--model", "gpt-4.1-mini"]
        code = main([*args, "--max-cost", "0.001", "--out", str(tmp_path / "o")])
    assert code == 2
    assert received == []
    err = capsys.readouterr().err
    assert "LLMFLOW_LOCAL_PRICE_PER_MTOK" in err and "gpt-4.1-mini" in err


def _wide_workflow() -> Workflow:
    """Steps whose max_tokens (the default, 512) is far above what they answer: each call
    books 17x what it then uses."""
    steps = [llm(f"s{i}", instructions=f"Step {i}.") for i in range(CALLS_PER_ITEM)]
    return Workflow(name="three", step=chain("three", *steps))


async def _run_wide(concurrency: int, store: RunStore | None = None) -> tuple[Any, SlowModel]:
    model = SlowModel(_answer)
    batch = await run_batch(
        _wide_workflow(), [Item(str(i), f"text {i}") for i in range(300)],
        gateway=scripted_gateway(model), concurrency=concurrency, store=store, run_id="wide",
        budget=Budget(max_tokens=50 * CALLS_PER_ITEM * TOKENS_PER_CALL),
    )  # fmt: skip
    return batch, model


async def test_calls_wait_for_the_worst_case_booked_by_calls_in_flight() -> None:
    # Without waiting, a call refused because 100 calls in flight each booked 512 tokens
    # failed its item half-done; the run finished a few items and stopped.
    wide, _ = await _run_wide(100)
    narrow, _ = await _run_wide(4)
    assert not wide.failed and not narrow.failed, [str(r.error) for r in wide.failed][:3]
    assert abs(len(wide.results) - len(narrow.results)) <= 1
    # One call's worst case (~520 tokens, 6 items' worth) stays free for an item's last call.
    assert 40 <= len(wide.results) <= 50, len(wide.results)
    assert wide.status == "stopped" and "--max-tokens" in (wide.error or "")


async def test_a_run_stopped_by_its_budget_and_resumed_spends_nothing_more(
    tmp_path: Path,
) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    first, model = await _run_wide(8, store)
    assert first.status == "stopped"
    finished = {int(r.key) for r in first.results}
    budget = Budget(max_tokens=50 * CALLS_PER_ITEM * TOKENS_PER_CALL)  # the same budget
    resumed = BatchRun(
        workflow=_wide_workflow(), items=[Item(str(i), f"text {i}") for i in range(300)],
        base=RunContext(gateway=scripted_gateway(model), run_id="wide", budgets=(budget,)),
        store=store,
    )  # fmt: skip
    resumed.start(model="scripted", source=None, resuming=True)
    sent = len(model.requests)

    async def execute(index: int, item: Item) -> Any:
        if index in finished:  # a durable run replays what it recorded (`durable.batch`)
            from llmflow.runtime.runner import ItemResult

            return ItemResult(key=item.key, output="replayed")
        return await resumed.run_item(index, item)

    batch = await resumed.drive(execute, concurrency=8)
    assert len(model.requests) == sent  # not one call more
    assert batch.status == "stopped" and len(batch.results) == len(finished)
    assert batch.not_started == 300 - len(finished)
    store.close()


# -- from the command line: a run its budget stopped goes on with a larger one -----------------

NUMBERS = """\
name: numbers
input:
  type: jsonl
  key: id
steps:
  - {id: parse, kind: llm, instructions: "Read the number.", prompt: "Item {{ input.n }}"}
  - {id: say, kind: llm, instructions: "Say it.", prompt: "Say {{ input.n }}"}
"""


def test_resume_with_a_larger_budget_finishes_a_run_its_budget_stopped(tmp_path: Path) -> None:
    import json
    import os
    import subprocess

    from .fault_server import serve_faults
    from .test_durable import LLMFLOW

    (tmp_path / "numbers.yaml").write_text(NUMBERS, encoding="utf-8")
    rows = "".join(json.dumps({"id": f"n{i}", "n": i}) + "\n" for i in range(20))
    (tmp_path / "items.jsonl").write_text(rows, encoding="utf-8")
    # $1 per million tokens, 2 calls of 25 tokens an item: $0.00005 an item; a call books its
    # worst case (max_tokens 512: ~$0.0005) until it ends, so $0.001 finishes a few items.
    with serve_faults(lambda body: "ok", rate=0.0) as log:
        env = {**os.environ, "LLMFLOW_HOME": str(tmp_path / "home"), "OPENAI_API_KEY": "sk-t",
               "OPENAI_BASE_URL": log.url, "LLMFLOW_MODEL": "fake-model",
               "LLMFLOW_LOCAL_PRICE_PER_MTOK": "1"}  # fmt: skip

        def llmflow(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*LLMFLOW, *args, "--json"], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=300)  # fmt: skip

        first = llmflow("run", "numbers.yaml", "items.jsonl", "--max-cost", "0.001")
        assert first.returncode != 0, first.stderr
        assert "items were not started" in first.stderr
        run_id = json.loads(first.stdout)["run_id"]
        assert f"llmflow resume {run_id} --max-cost" in first.stderr  # says how to go on
        store = RunStore(tmp_path / "home" / "llmflow.db")
        done_before = sum(i["status"] == "ok" for i in store.rows("items", run_id))
        store.close()
        assert 0 < done_before < 20
        requests_before = log.requests

        # The same budget again: nothing more is spent.
        again = llmflow("resume", run_id)
        assert again.returncode != 0 and log.requests == requests_before, again.stderr
        # A new budget is for one named run.
        unnamed = llmflow("resume", "--max-cost", "1")
        assert unnamed.returncode == 2 and "name it" in unnamed.stderr
        # A larger one: the items not started run; those done are not asked again.
        more = llmflow("resume", run_id, "--max-cost", "0.01")
        assert more.returncode == 0, more.stderr
        store = RunStore(tmp_path / "home" / "llmflow.db")
        items = store.rows("items", run_id)
        store.close()
        assert len(items) == 20 and all(i["status"] == "ok" for i in items)
        assert log.requests == requests_before + 2 * (20 - done_before)
