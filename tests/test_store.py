from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from llmflow import ConfigError, Gateway, Item, RunStore, Settings, Workflow, chain, llm, run_batch
from llmflow.store.migrations import MIGRATIONS, migrate
from llmflow.testing import ScriptedModel, scripted_gateway

from .test_openai_compat import Server, completion


def test_migrations_build_the_schema_from_a_blank_database_once(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "blank.db")
    assert migrate(db) == [name for name, _ in MIGRATIONS]
    assert migrate(db) == []  # idempotent
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "items", "steps", "model_calls", "_migrations"} <= tables


def test_migration_names_are_unique_and_append_only() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert len(names) == len(set(names))
    assert names == sorted(names)


def flow() -> Workflow:
    return Workflow(
        name="echo",
        step=chain("echo", llm("first", instructions="i"), llm("second", instructions="j")),
    )


async def test_a_batch_records_the_run_items_steps_and_calls(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    model = ScriptedModel(lambda r: "ok")
    items = [Item("a", "good"), Item("b", "bad"), Item("c", "good too")]
    batch = await run_batch(
        flow(), items, gateway=scripted_gateway(model), store=store, concurrency=2
    )
    assert batch.status == "ok"
    run = store.find_run(batch.run_id[:10])
    assert (run["status"], run["items_total"], run["items_ok"], run["items_failed"]) == (
        "ok",
        3,
        3,
        0,
    )
    calls = store.rows("model_calls", batch.run_id)
    assert len(calls) == 6
    assert {c["step_path"] for c in calls} == {"echo/first", "echo/second"}
    assert all(c["input_tokens"] > 0 and c["output_tokens"] > 0 for c in calls)
    steps = store.rows("steps", batch.run_id)
    assert sorted({s["path"] for s in steps}) == ["echo", "echo/first", "echo/second"]
    items_rows = store.rows("items", batch.run_id)
    assert [i["key"] for i in sorted(items_rows, key=lambda i: i["key"])] == ["a", "b", "c"]
    assert all(i["status"] == "ok" for i in items_rows)


async def test_a_failing_item_is_recorded_and_the_batch_goes_on(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")

    def reply(request: object) -> str:
        text = request.messages[-1].content  # type: ignore[attr-defined]
        if text == "bad":
            raise ValueError("provider exploded")
        return "ok"

    items = [Item("a", "good"), Item("b", "bad")]
    batch = await run_batch(
        flow(), items, gateway=scripted_gateway(ScriptedModel(reply)), store=store
    )
    assert batch.status == "partial"
    assert [r.key for r in batch.failed] == ["b"]
    rows = {i["key"]: i for i in store.rows("items", batch.run_id)}
    assert rows["a"]["status"] == "ok"
    assert rows["b"]["status"] == "failed"
    assert "echo/first" in rows["b"]["error"]
    assert "provider exploded" in rows["b"]["error"]
    failed_calls = [c for c in store.rows("model_calls", batch.run_id) if c["status"] == "failed"]
    assert len(failed_calls) == 1
    assert "provider exploded" in failed_calls[0]["error"]
    assert store.find_run(batch.run_id)["status"] == "partial"


async def test_api_keys_never_reach_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-live-DO-NOT-STORE-1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    server = Server(*(httpx2.Response(200, json=completion("fine")) for _ in range(2)))
    gateway = Gateway(Settings())
    gateway.register("openai", server.client())
    store = RunStore(tmp_path / "runs.db")
    await run_batch(
        flow(), [Item("a", "x")], gateway=gateway, model="openai:gpt-4.1-mini", store=store
    )
    store.close()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*"))
    assert b"gpt-4.1-mini" in data  # the calls are there...
    assert secret.encode() not in data  # ...the key is not


def test_run_lookup_errors_say_what_to_do(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(ConfigError, match="llmflow runs list"):
        store.find_run("nope")


def test_an_unwritable_state_directory_names_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="LLMFLOW_HOME"):
        RunStore(blocker / "sub" / "runs.db")


async def test_an_interrupted_batch_keeps_what_finished(tmp_path: Path) -> None:
    import asyncio

    from llmflow import RunInterrupted

    store = RunStore(tmp_path / "runs.db")
    model = ScriptedModel(lambda r: "slow" if r.messages[-1].content == "slow" else "ok")
    first_done = asyncio.Event()

    class Slow(ScriptedModel):
        async def complete(self, model_id: str, request: object) -> object:  # type: ignore[override]
            if request.messages[-1].content == "slow":  # type: ignore[attr-defined]
                await asyncio.sleep(30)
            return await model.complete(model_id, request)  # type: ignore[arg-type]

    items = [Item("fast", "fast"), Item("slow", "slow")]
    task = asyncio.create_task(
        run_batch(
            flow(),
            items,
            gateway=scripted_gateway(Slow()),
            store=store,
            on_item_done=lambda r: first_done.set(),
        )
    )
    await first_done.wait()
    task.cancel()
    with pytest.raises(RunInterrupted) as info:
        await task
    batch = info.value.batch
    assert batch.status == "interrupted"
    assert [r.key for r in batch.results] == ["fast"]
    run = store.find_run(batch.run_id)
    assert (run["status"], run["items_ok"]) == ("interrupted", 1)
    statuses = {i["key"]: i["status"] for i in store.rows("items", batch.run_id)}
    assert statuses == {"fast": "ok", "slow": "interrupted"}


def test_the_viewers_reads_use_totals_and_indexes_never_a_scan_of_a_runs_rows() -> None:
    """EXPLAIN QUERY PLAN of every query the viewer's pages and `runs list|show` run: the
    sums read `run_*_totals` alone, and pages of items are found through an index."""
    store = RunStore(":memory:")
    store.start_run("r", workflow="wf", model="m", source=None, out_dir=None, items_total=2)
    for n in range(2):
        store.start_item(f"r.{n}", run_id="r", key=str(n))
        store.add_step(run_id="r", item_id=f"r.{n}", path="wf/a", kind="llm", input=None,
                       output=None, error=None, started_at=n, latency_s=0.1)  # fmt: skip
        store.end_item(f"r.{n}", status="ok", output=None, error=None)
    store.flush()
    plans: dict[str, list[str]] = {}

    def plan(name: str, read: Callable[[], object]) -> None:
        seen: list[str] = []
        store.db.set_trace_callback(seen.append)
        read()
        store.db.set_trace_callback(None)
        plans[name] = [
            str(row[3]) for sql in seen if sql.lstrip().upper().startswith(("SELECT", "WITH"))
            for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}")
        ]  # fmt: skip

    for by in ("day", "workflow", "step", "model"):
        plan(f"cost_by {by}", lambda by=by: store.cost_by(by, since=0))  # type: ignore[misc]
    plan("usage", lambda: store.usage(["r"]))
    plan("step_usage", lambda: store.step_usage("r"))
    plan("item_counts", lambda: store.item_counts("r"))
    plan("run_page", lambda: store.run_page(status="running", workflow="wf"))
    plan("find_run", lambda: store.find_run("r"))
    for name in list(plans):
        touched = [p for p in plans[name] if any(t in p for t in ("items", "steps", "model_calls"))]
        assert not touched, f"{name} reads a run's rows: {touched}"
    plan("item_page", lambda: store.item_page("r", offset=1))
    plan("failed items", lambda: store.item_page("r", status="failed", offset=1))
    plan("an item's rows", lambda: store.item_rows("model_calls", "r.0"))
    assert any("COVERING INDEX items_run_started" in p for p in plans["item_page"])
    assert any("COVERING INDEX items_run_status_started" in p for p in plans["failed items"])
    for name, lines in plans.items():
        scans = [p for p in lines if p.startswith("SCAN ")
                 and p.split()[1] in ("items", "steps", "model_calls")]  # fmt: skip
        assert not scans, f"{name} scans a table: {scans}"
    store.close()


def test_a_store_recorded_before_the_run_totals_gets_them_from_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmflow.store import migrations

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    before = [m for m in MIGRATIONS if m[0] < "m010"]
    monkeypatch.setattr(migrations, "MIGRATIONS", before)
    migrate(db)
    monkeypatch.undo()
    db.execute("INSERT INTO runs (id, workflow, status, started_at) VALUES ('r', 'wf', 'ok', 0)")
    for n, status in enumerate(["ok", "ok", "failed"]):
        db.execute("INSERT INTO items VALUES (?, 'r', ?, ?, NULL, NULL, ?, ?)",
                   (f"r.{n}", str(n), status, n, n + 1))  # fmt: skip
        db.execute("INSERT INTO steps (id, run_id, item_id, path, kind, status, started_at, "
                   "latency_ms) VALUES (?, 'r', ?, 'wf/a', 'llm', ?, ?, 5)",
                   (f"s{n}", f"r.{n}", status, n))  # fmt: skip
        db.execute("INSERT INTO model_calls (id, run_id, item_id, step_path, model, provider, "
                   "prompt, input_tokens, output_tokens, latency_ms, attempts, status, "
                   "started_at, cost, cached) VALUES (?, 'r', ?, 'wf/a', 'm', 'p', '{}', 10, 2, "
                   "100, 1, 'ok', ?, '0.5', 0)", (f"c{n}", f"r.{n}", n))  # fmt: skip
    db.execute(
        "INSERT INTO model_calls (id, run_id, item_id, step_path, model, provider, "
        "prompt, latency_ms, attempts, status, started_at, cached) VALUES ('c9', 'r', "
        "'r.2', 'wf/a', 'm', 'p', '{}', 0, 0, 'running', 3, 0)"
    )  # in flight: not counted
    db.commit()
    db.close()
    store = RunStore(path)  # applies m010 on: the totals of the rows already there
    assert store.item_counts("r") == {"ok": 2, "failed": 1}
    u = store.usage(["r"])["r"]
    assert (u["calls"], u["input_tokens"], u["output_tokens"], u["cost"]) == (3, 30, 6, 1.5)
    (step,) = store.step_usage("r")
    assert (step["steps"], step["steps_failed"], step["step_ms"], step["calls"]) == (3, 1, 5, 3)
    store.close()


def test_a_new_store_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """Small pages make the default path's many small commits cheaper (`PAGE_SIZE`); a store
    made before keeps the page size it has (SQLite cannot change it without a VACUUM)."""
    from llmflow.store.sqlite import PAGE_SIZE

    new = RunStore(tmp_path / "new.db")
    assert new.db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 2048
    new.close()
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("PRAGMA page_size=4096")
    old.execute("CREATE TABLE t (x)")
    old.close()
    kept = RunStore(tmp_path / "old.db")
    assert kept.db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert kept.has_run("none") is False  # migrated and usable
    kept.close()
