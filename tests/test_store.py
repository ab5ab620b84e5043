from __future__ import annotations

import sqlite3
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
