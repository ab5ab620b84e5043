"""The run store's contract (`llmflow.store.base.Store`), run against every implementation.

A new store (PostgreSQL, say) is added to `STORES` and must pass the same tests: what the
recorder, the response cache, the CLI's reports, the durable engine and the tuning commands
rely on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llmflow.store.base import CallRecord, Store
from llmflow.store.sqlite import RunStore

STORES: dict[str, Callable[[Path], Store]] = {
    "sqlite file": lambda tmp: RunStore(tmp / "runs.sqlite"),
    "sqlite in memory": lambda tmp: RunStore(":memory:"),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = STORES[request.param](tmp_path)
    yield made
    made.close()


def _call(call_id: str, *, status: str = "ok", cost: str | None = "0.25") -> CallRecord:
    return CallRecord(
        id=call_id, model="openai:m", provider="openai", prompt='{"messages": []}',
        response="hello", finish_reason="stop", input_tokens=10, output_tokens=5,
        latency_ms=12.5, attempts=1, status=status, error=None, started_at=time.time(),
        cost=cost, cached=False,
    )  # fmt: skip


def _start(store: Store, run_id: str = "run1", *, workflow: str = "wf", items: int = 2) -> None:
    store.start_run(run_id, workflow=workflow, model="openai:m", source="in/", out_dir="out/",
                    items_total=items)  # fmt: skip


def test_a_run_its_items_steps_and_calls_read_back(store: Store) -> None:
    _start(store)
    assert store.has_run("run1") and not store.has_run("other")
    store.start_item("run1.0", run_id="run1", key="a.eml")
    store.add_step(run_id="run1", item_id="run1.0", path="wf/classify", kind="llm",
                   input={"text": "hi"}, output="billing", error=None, started_at=time.time(),
                   latency_s=0.01)  # fmt: skip
    store.add_call(_call("c1"), run_id="run1", item_id="run1.0", step_path="wf/classify")
    store.end_item("run1.0", status="ok", output={"label": "billing"}, error=None)
    store.flush()
    run = store.find_run("run1")
    assert (run["status"], run["items_ok"], run["items_failed"]) == ("running", 1, 0)
    store.end_run("run1", status="ok", items_ok=1, items_failed=0, error=None)
    (listed,) = store.runs()
    assert (listed["id"], listed["status"], listed["items_total"]) == ("run1", "ok", 2)
    assert store.find_run("run")["id"] == "run1"  # a unique prefix
    (item,) = store.rows("items", "run1")
    assert (item["key"], item["status"], item["output"]) == ("a.eml", "ok", '{"label":"billing"}')
    assert store.find_item("run1", "a.eml")["id"] == "run1.0"
    (step,) = store.rows("steps", "run1")
    assert (step["path"], step["kind"], step["status"]) == ("wf/classify", "llm", "ok")
    (call,) = store.rows("model_calls", "run1")
    assert (call["id"], call["status"], call["cost"], call["input_tokens"]) == (
        "c1", "ok", "0.25", 10)  # fmt: skip
    (cost,) = store.call_costs("run1")
    assert (cost["workflow"], cost["step_path"], cost["cost"]) == ("wf", "wf/classify", "0.25")
    assert len(store.call_costs()) == 1


def test_an_item_run_again_keeps_one_record(store: Store) -> None:
    _start(store)
    store.start_item("run1.0", run_id="run1", key="a.eml")
    store.end_item("run1.0", status="failed", output=None, error=RuntimeError("boom"))
    store.start_item("run1.0", run_id="run1", key="a.eml")  # resumed
    store.end_item("run1.0", status="ok", output="fine", error=None)
    store.flush()
    (item,) = store.rows("items", "run1")
    assert (item["status"], item["error"]) == ("ok", None)


def test_a_call_in_flight_is_replaced_when_it_ends_or_interrupted_on_resume(store: Store) -> None:
    _start(store)
    store.add_call(_call("c1", status="running", cost=None), run_id="run1", item_id=None,
                   step_path="wf/a")  # fmt: skip
    store.add_call(_call("c2", status="running", cost=None), run_id="run1", item_id=None,
                   step_path="wf/b")  # fmt: skip
    store.add_call(_call("c1"), run_id="run1", item_id=None, step_path="wf/a")
    store.flush()
    store.interrupt_calls("run1")
    calls = {c["id"]: c for c in store.rows("model_calls", "run1")}
    assert calls["c1"]["status"] == "ok"
    assert calls["c2"]["status"] == "interrupted" and "died" in calls["c2"]["error"]


def test_a_run_whose_process_died_reads_as_interrupted_and_counts_its_items(store: Store) -> None:
    _start(store)
    store.start_item("run1.0", run_id="run1", key="a")
    store.end_item("run1.0", status="ok", output=None, error=None)
    store.flush()
    assert store.runs()[0]["status"] == "running"  # this process is alive
    if isinstance(store, RunStore):  # pretend it was started by a process now gone
        gone = os.fork()
        if gone == 0:
            os._exit(0)
        os.waitpid(gone, 0)
        with store.db:
            store.db.execute("UPDATE runs SET pid = ?", (gone,))
    run = store.runs()[0]
    assert (run["status"], run["items_ok"]) == ("interrupted", 1)
    store.resume_run("run1")
    assert store.runs()[0]["status"] == "running"


def test_latest_finished_run_of_a_workflow_on_a_model(store: Store) -> None:
    _start(store, "r1")
    store.end_run("r1", status="ok", items_ok=2, items_failed=0, error=None)
    _start(store, "r2")  # newer, still running: not finished
    latest = store.latest_run("wf", "openai:m")
    assert latest is not None and latest["id"] == "r1"
    assert store.latest_run("wf", "openai:other") is None


def test_response_cache(store: Store) -> None:
    assert store.cache_get("k") is None
    store.cache_put("k", "m", '{"text": "hi"}')
    store.flush()
    assert store.cache_get("k") == '{"text": "hi"}'
    store.cache_drop("k")
    store.flush()
    assert store.cache_get("k") is None


def test_corrections_join_the_recorded_decisions(store: Store) -> None:
    _start(store)
    store.start_item("run1.0", run_id="run1", key="a")
    store.add_step(run_id="run1", item_id="run1.0", path="wf/category/llm", kind="llm",
                   input="text", output="spam", error=None, started_at=time.time(),
                   latency_s=0.0)  # fmt: skip
    store.flush()
    store.correct("run1.0", "category", "ham", note="not spam")
    (decision,) = store.decisions("category", "wf")
    assert (decision["output"], decision["correction"]) == ('"spam"', "ham")


def test_cascade_decisions_with_audits_read_back_by_step_workflow_time_and_model(
    store: Store,
) -> None:
    _start(store)
    _start(store, "run2", workflow="other")
    now = time.time()
    attempts = [{"tier": "ml", "label": "spam", "confidence": 0.97}]
    for n, (run, item) in enumerate([("run1", "run1.0"), ("run1", "run1.1"), ("run2", "run2.0")]):
        store.start_item(item, run_id=run, key=f"k{n}")
        store.add_decision(run_id=run, item_id=item, path="wf/category", step="category",
                           model="openai:m", tier="ml", label="spam", confidence=0.97,
                           attempts=attempts, audit_label="ham" if n == 0 else None,
                           created_at=now + n)  # fmt: skip
    # The same item decided again (a resumed run) keeps one record, the newest.
    store.add_decision(run_id="run1", item_id="run1.1", path="wf/category", step="category",
                       model="openai:m", tier="llm", label="ham", confidence=0.9,
                       attempts=[*attempts, {"tier": "llm", "label": "ham", "confidence": 0.9}],
                       audit_label=None, created_at=now + 1)  # fmt: skip
    store.correct("run1.0", "category", "spam", note="the audit was wrong")
    rows = store.cascade_decisions("category", "wf")
    assert [(r["item_id"], r["tier"], r["audit_label"]) for r in rows] == [
        ("run1.0", "ml", "ham"), ("run1.1", "llm", None),
    ]  # fmt: skip
    assert rows[0]["correction"] == "spam" and rows[0]["confidence"] == 0.97
    assert [a["tier"] for a in json.loads(rows[1]["attempts"])] == ["ml", "llm"]
    assert len(store.cascade_decisions("category")) == 3
    assert [r["item_id"] for r in store.cascade_decisions("category", since=now + 0.5)] == [
        "run1.1", "run2.0",
    ]  # fmt: skip
    assert store.cascade_decisions("category", model="local") == []
    assert store.cascade_decisions("other") == []


def test_paged_reads_filter_count_and_sum_in_the_store(store: Store) -> None:
    # The viewer's queries (`llmflow ui`): pages of runs and items, usage summed per run,
    # per step and per dimension, one item's records.
    for n, workflow in enumerate(["wf", "other", "wf"]):
        _start(store, f"run{n}", workflow=workflow, items=3)
    for i in range(3):
        store.start_item(f"run2.{i}", run_id="run2", key=f"k{i}.eml")
        store.add_step(run_id="run2", item_id=f"run2.{i}", path="wf/classify", kind="llm",
                       input={"text": "x" * 20_000}, output="ok", error=None,
                       started_at=time.time(), latency_s=0.01)  # fmt: skip
        store.add_call(_call(f"c{i}", status="ok" if i else "failed"), run_id="run2",
                       item_id=f"run2.{i}", step_path="wf/classify")  # fmt: skip
        store.end_item(f"run2.{i}", status="failed" if i == 1 else "ok", output={"n": i},
                       error=None)  # fmt: skip
    cached = _call("c9", cost=None)
    cached.cached = True
    store.add_call(cached, run_id="run2", item_id="run2.0", step_path="wf/reply")
    store.flush()
    store.end_run("run1", status="failed", items_ok=0, items_failed=3, error="x")

    assert [r["id"] for r in store.run_page(limit=2)] == ["run2", "run1"]
    assert [r["id"] for r in store.run_page(limit=2, offset=2)] == ["run0"]
    assert [r["id"] for r in store.run_page(workflow="wf")] == ["run2", "run0"]
    assert [r["id"] for r in store.run_page(status="failed")] == ["run1"]
    assert store.run_page(since=time.time() + 60) == []
    assert store.workflows() == ["other", "wf"]

    usage = store.usage(["run2", "run0"])
    assert set(usage) == {"run2"}
    u = usage["run2"]
    assert (u["calls"], u["cached"], u["input_tokens"], u["output_tokens"]) == (4, 1, 30, 15)
    assert (u["cost"], u["unpriced"], u["failed"]) == (0.75, 0, 1)

    page = store.item_page("run2", limit=2)
    assert [r["key"] for r in page] == ["k0.eml", "k1.eml"]
    assert [r["key"] for r in store.item_page("run2", limit=2, offset=2)] == ["k2.eml"]
    assert [r["key"] for r in store.item_page("run2", status="failed")] == ["k1.eml"]
    assert store.item_counts("run2") == {"ok": 2, "failed": 1}

    by_step = {r["path"]: r for r in store.step_usage("run2")}
    assert by_step["wf/classify"]["steps"] == 3 and by_step["wf/classify"]["calls"] == 3
    assert by_step["wf/classify"]["failed"] == 1

    item = store.item("run2.0")
    assert item is not None and item["key"] == "k0.eml" and store.item("nope") is None
    (step,) = store.item_rows("steps", "run2.0")
    assert step["input"] == '{"text":"' + "x" * 20_000 + '"}'  # a long text restored
    assert [c["id"] for c in store.item_rows("model_calls", "run2.0")] == ["c0", "c9"]
    call = store.call("c1")
    assert call is not None and call["response"] == "hello" and store.call("nope") is None

    by_model = store.cost_by("model")
    assert [(r["key"], r["calls"], r["cost"]) for r in by_model] == [("openai:m", 4, 0.75)]
    assert [r["key"] for r in store.cost_by("workflow")] == ["wf"]
    assert {r["key"] for r in store.cost_by("step")} == {"wf/classify", "wf/reply"}
    assert len(store.cost_by("day")) == 1
    assert store.cost_by("day", since=time.time() + 2 * 86400) == []  # by whole days


def _summed(store: Store, run_id: str) -> dict[str, Any]:
    """A run's totals summed from its rows, in Python: what the store's totals must equal
    (calls count once they end: one in flight has no outcome, tokens or cost yet)."""
    calls = [c for c in store.rows("model_calls", run_id) if c["status"] != "running"]
    paid = [c for c in calls if not c["cached"]]
    usage = {
        "calls": len(calls), "cached": sum(1 for c in calls if c["cached"]),
        "input_tokens": sum(c["input_tokens"] or 0 for c in paid),
        "output_tokens": sum(c["output_tokens"] or 0 for c in paid),
        "cost": sum(Decimal(c["cost"]) for c in paid if c["cost"] is not None),
        "unpriced": sum(1 for c in paid if c["cost"] is None),
        "failed": sum(1 for c in calls if c["status"] != "ok"),
    }  # fmt: skip
    steps: dict[str, list[int]] = {}
    for s in store.rows("steps", run_id):
        counted = steps.setdefault(s["path"], [0, 0])
        counted[0] += 1
        counted[1] += s["status"] != "ok"
    items: dict[str, int] = {}
    for i in store.rows("items", run_id):
        items[i["status"]] = items.get(i["status"], 0) + 1
    return {"usage": usage, "steps": steps, "items": items}


def _totals(store: Store, run_id: str) -> dict[str, Any]:
    u = store.usage([run_id])[run_id]
    usage = {k: u[k] for k in ("calls", "cached", "input_tokens", "output_tokens", "unpriced",
                               "failed")}  # fmt: skip
    usage["cost"] = Decimal(int(u["cost_pico"])) / 10**12
    steps = {s["path"]: [s["steps"], s["steps_failed"]] for s in store.step_usage(run_id)}
    return {"usage": usage, "steps": steps, "items": store.item_counts(run_id)}


def _record_item(store: Store, run_id: str, n: int, *, status: str, cost: str | None) -> None:
    item_id = f"{run_id}.{n}"
    store.start_item(item_id, run_id=run_id, key=f"k{n}")
    for path in ("wf/classify", "wf/reply"):
        store.add_step(run_id=run_id, item_id=item_id, path=path, kind="llm", input=n,
                       output=None, error=ValueError("x") if status == "failed" else None,
                       started_at=time.time(), latency_s=0.01)  # fmt: skip
    # Each call is recorded in flight first, then again when it ends (one row, replaced).
    store.add_call(_call(f"{item_id}.c", status="running", cost=None), run_id=run_id,
                   item_id=item_id, step_path="wf/classify")  # fmt: skip
    store.add_call(_call(f"{item_id}.c", cost=cost), run_id=run_id, item_id=item_id,
                   step_path="wf/classify")  # fmt: skip
    hit = _call(f"{item_id}.hit", cost=None)
    hit.cached = True
    store.add_call(hit, run_id=run_id, item_id=item_id, step_path="wf/reply")
    store.end_item(item_id, status=status, output=n, error=None)
    store.flush()


def test_run_totals_equal_the_summed_rows_after_a_run(store: Store) -> None:
    _start(store, items=6)
    for n in range(6):
        _record_item(store, "run1", n, status="failed" if n % 3 == 0 else "ok",
                     cost=None if n == 5 else "0.0000672")  # fmt: skip
    store.add_call(_call("stray", status="running", cost=None), run_id="run1", item_id=None,
                   step_path="wf/classify")  # fmt: skip
    store.flush()
    assert _totals(store, "run1")["usage"]["calls"] == 12  # in flight: not counted yet
    store.interrupt_calls("run1")  # updated in place: now counted, as not ok
    assert _totals(store, "run1") == _summed(store, "run1")
    store.end_run("run1", status="partial", items_ok=4, items_failed=2, error=None)
    totals = _totals(store, "run1")
    assert totals == _summed(store, "run1")
    assert totals["items"] == {"ok": 4, "failed": 2}
    assert totals["steps"] == {"wf/classify": [6, 2], "wf/reply": [6, 2]}
    usage = totals["usage"]
    assert usage == {"calls": 13, "cached": 6, "input_tokens": 70, "output_tokens": 35,
                     "cost": Decimal("0.000336"), "unpriced": 2, "failed": 1}  # fmt: skip
    assert store.usage(["run1"])["run1"]["cost"] == pytest.approx(0.000336)
    (listed,) = store.run_page()
    assert (listed["items_ok"], listed["items_failed"]) == (4, 2)
    assert {r["key"]: r["calls"] for r in store.cost_by("step")} == {
        "wf/classify": 7, "wf/reply": 6}  # fmt: skip


def test_a_calls_end_record_without_a_prompt_keeps_the_one_it_started_with(
    store: Store,
) -> None:
    _start(store)
    store.add_call(_call("c1", status="running", cost=None), run_id="run1", item_id=None,
                   step_path="wf/classify")  # fmt: skip
    ended = _call("c1")
    ended.prompt = ""
    store.add_call(ended, run_id="run1", item_id=None, step_path="wf/classify")
    store.flush()
    (row,) = store.rows("model_calls", "run1")
    assert (row["prompt"], row["status"], row["response"]) == ('{"messages": []}', "ok", "hello")
    assert _totals(store, "run1") == _summed(store, "run1")


def test_a_resumed_run_counts_its_new_and_rerun_items(store: Store) -> None:
    _start(store, items=4)
    for n in range(2):
        _record_item(store, "run1", n, status="failed" if n else "ok", cost="0.25")
    store.end_run("run1", status="interrupted", items_ok=1, items_failed=1, error="stopped")
    assert store.item_counts("run1") == {"ok": 1, "failed": 1}

    store.resume_run("run1")
    store.interrupt_calls("run1")
    _record_item(store, "run1", 1, status="ok", cost="0.25")  # the failed item, again
    running = store.run_page()[0]
    assert (running["status"], running["items_ok"], running["items_failed"]) == ("running", 2, 0)
    for n in (2, 3):
        _record_item(store, "run1", n, status="ok", cost="0.25")
    store.end_run("run1", status="ok", items_ok=4, items_failed=0, error=None)
    totals = _totals(store, "run1")
    assert totals == _summed(store, "run1")
    assert totals["items"] == {"ok": 4}
    assert totals["usage"]["calls"] == 8  # 4 items: the rerun item's calls replaced
    assert totals["steps"] == {"wf/classify": [5, 1], "wf/reply": [5, 1]}  # steps append
    assert store.usage(["run1"])["run1"]["cost"] == 1.0
