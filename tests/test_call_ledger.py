"""The call ledger (durable model-call checkpoints in the run store), piece by piece. The kill
and resume tests (test_durable*.py) check it end to end: no completed call is made again, and
every call the provider saw is on record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmflow.durable.ledger import CallLedger, current_item, enter_item, leave_item
from llmflow.durable.run_spec import RunSpec
from llmflow.durable.serialization import JsonSerializer, new_encryption_key
from llmflow.errors import ConfigError
from llmflow.models.client import ModelResponse, Usage
from llmflow.models.gateway import Gateway
from llmflow.settings import Settings
from llmflow.steps.context import RunContext
from llmflow.store.sqlite import RunStore


class CountingStore(RunStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits = 0

    def flush(self) -> None:
        if self._pending:
            self.commits += 1
        super().flush()


def _row(store: RunStore, n: int) -> None:
    store.add(
        "INSERT INTO runs (id, workflow, status, started_at) VALUES (?, 'w', 'running', 0)",
        (f"run-{n}",),
    )


async def test_calls_that_start_together_share_one_commit(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "runs.sqlite")
    ledger = CallLedger(store, JsonSerializer())

    async def call(n: int) -> None:
        _row(store, n)
        await ledger.commit()
        # committed when the wait ends: another connection sees the row
        assert RunStore(store.path).has_run(f"run-{n}")

    await asyncio.gather(*(call(n) for n in range(200)))
    assert store.commits == 1
    await call(200)  # a later turn of the loop: a commit of its own
    assert store.commits == 2


async def test_a_cancelled_waiter_does_not_cancel_the_others_commit(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "runs.sqlite")
    ledger = CallLedger(store, JsonSerializer())
    _row(store, 1)
    first = asyncio.ensure_future(ledger.commit())
    _row(store, 2)
    second = asyncio.ensure_future(ledger.commit())
    await asyncio.sleep(0)  # both wait
    first.cancel()
    await second
    assert store.has_run("run-1") and store.has_run("run-2")


async def test_a_failed_commit_reaches_every_waiter(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    ledger = CallLedger(store, JsonSerializer())
    store.add("INSERT INTO no_such_table VALUES (?)", (1,))
    results = await asyncio.gather(ledger.commit(), ledger.commit(), return_exceptions=True)
    assert all(isinstance(r, Exception) and "no_such_table" in str(r) for r in results)


@pytest.mark.parametrize("key", [None, new_encryption_key()])
async def test_an_item_resumed_gets_its_calls_back_at_the_same_places(
    tmp_path: Path, key: str | None
) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    ledger = CallLedger(store, JsonSerializer(key))
    first = ledger.item("run-1/0", local=True)
    answers: dict[str, Any] = {}
    for path, text in [("a", "one"), ("b", "two"), ("a", "three")]:
        k = first.key(path)
        answers[k] = ModelResponse(text=text, usage=Usage(input_tokens=3, output_tokens=1))
        first.record(k, answers[k])
    await ledger.commit()
    assert list(answers) == ["model:a#0", "model:b#0", "model:a#1"]
    stored = store.checkpoints("run-1/0")
    if key is not None:  # nothing readable in the database without the key
        assert all("three" not in text for text in stored.values())

    again = CallLedger(RunStore(store.path), JsonSerializer(key)).item("run-1/0", local=True)
    replayed = [again.replay(again.key(p)) for p in ["a", "b", "a", "a"]]
    assert replayed[:3] == list(answers.values())
    assert replayed[3] is None  # the call the item had not made: made now
    assert CallLedger(store, JsonSerializer(key)).item("run-1/1", local=True).recorded == {}


def test_specs_stored_before_the_ledger_keep_their_calls_as_dbos_steps() -> None:
    data = RunSpec(
        run_id="r", workflow="w", source=None, items_total=1, keys_digest="k", code="c"
    ).model_dump()
    assert RunSpec.stored(data).call_checkpoints == "store"
    del data["call_checkpoints"]  # as written by an earlier llmflow
    assert RunSpec.stored(data).call_checkpoints == "dbos"


async def test_an_effect_runs_once_and_a_resumed_item_gets_its_result(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    done: list[str] = []

    async def refund() -> dict[str, str]:
        assert current_item() is None  # what the effect does inside is not the item's
        done.append("refund")
        return {"refunded": "NW-1"}

    item = CallLedger(store, JsonSerializer()).item("run-1/0", local=True)
    assert await item.effect("pay", refund) == {"refunded": "NW-1"}
    again = CallLedger(RunStore(store.path), JsonSerializer()).item("run-1/0", local=True)
    assert await again.effect("pay", refund) == {"refunded": "NW-1"}
    assert done == ["refund"]
    assert await again.effect("pay", refund) == {"refunded": "NW-1"}  # its second: made
    assert done == ["refund", "refund"]


async def test_items_results_and_the_spec_are_found_by_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    ledger = CallLedger(store, JsonSerializer())
    ledger.save_spec("run-1", {"run_id": "run-1"})
    for wid in ("run-1/0", "run-1/10", "run-10/0", "run-1x/0"):
        ledger.record_item(wid, {"ok": True, "output": wid})
    await ledger.commit()
    assert ledger.finished_items("run-1") == {
        "run-1/0": {"ok": True, "output": "run-1/0"},
        "run-1/10": {"ok": True, "output": "run-1/10"},
    }
    assert "spec" in store.checkpoints("run-1")
    # A finished item keeps its result only: its calls are never made again.
    item = ledger.item("run-1/2", local=True)
    item.record(item.key("a"), ModelResponse(text="one"))
    await ledger.commit()
    assert list(store.checkpoints("run-1/2")) == ["model:a#0"]
    ledger.record_item("run-1/2", {"ok": True, "output": "one"})
    await ledger.commit()
    assert list(store.checkpoints("run-1/2")) == ["item"]


async def test_an_item_without_a_dbos_workflow_cannot_wait_for_an_approval(
    tmp_path: Path,
) -> None:
    from llmflow.durable.approval import request_approval

    token = enter_item(
        CallLedger(RunStore(tmp_path / "runs.sqlite"), JsonSerializer()).item("r/0", local=True)
    )
    try:
        ctx = RunContext(gateway=Gateway(Settings()), run_id="r").child("send")
        with pytest.raises(ConfigError, match=r"send: asks for an approval.*asks_approval"):
            await request_approval(ctx, "Send it?")
    finally:
        leave_item(token)


def test_a_workflow_says_whether_it_may_wait_for_a_person(tmp_path: Path) -> None:
    from llmflow import agent, tool
    from llmflow.durable import approve
    from llmflow.patterns.chain import chain
    from llmflow.steps.base import CodeStep

    def pay(order: str) -> str:
        """Pay an order back."""
        return "paid"

    plain = chain("c", CodeStep("a", str), agent("help", instructions="Help.", tools=[pay]))
    assert not plain.may_ask_approval("r")
    assert chain("c", CodeStep("a", str), approve("ok", prompt="Ok?")).may_ask_approval("r")
    asking = agent("help", instructions="Help.", tools=[tool(pay, needs_approval=True)])
    assert asking.may_ask_approval("r")
    boss = agent("boss", instructions="Delegate.", tools=[asking.as_tool()])
    assert boss.may_ask_approval("r")  # through the agent it uses as a tool
    sends = CodeStep("send", str, asks_approval=lambda run_id: run_id == "sending")
    assert sends.may_ask_approval("sending") and not sends.may_ask_approval("other")


def test_a_run_is_taken_over_only_from_a_process_that_is_gone(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess

    store = RunStore(tmp_path / "runs.sqlite")
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    for run_id, pid in (("alive", os.getppid()), ("gone", gone.pid), ("mine", os.getpid())):
        store.add(
            "INSERT INTO runs (id, workflow, status, started_at, host, pid) "
            "VALUES (?, 'w', 'running', 0, ?, ?)",
            (run_id, host, pid),
        )
    store.flush()
    assert store.claim_run("alive") == (host, os.getppid())  # refused: its process runs it
    assert store.claim_run("gone") is None
    assert store.claim_run("mine") is None
    rows = dict(store.db.execute("SELECT id, pid FROM runs").fetchall())
    assert rows == {"alive": os.getppid(), "gone": os.getpid(), "mine": os.getpid()}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_run_whose_killed_process_was_never_reaped_is_resumable(tmp_path: Path) -> None:
    """A process killed -9 stays a zombie until its parent reaps it (in a container without
    an init, maybe never): its run is interrupted, listed for resume and taken over."""
    import os
    import signal
    import socket
    import subprocess
    import time

    store = RunStore(tmp_path / "runs.sqlite")
    child = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(child.pid, signal.SIGKILL)  # not waited for: a zombie
        deadline = time.time() + 10
        while "Z" not in Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2][:3]:
            assert time.time() < deadline, "the killed child never became a zombie"
            time.sleep(0.05)
        store.add(
            "INSERT INTO runs (id, workflow, status, started_at, host, pid) "
            "VALUES ('dead', 'w', 'running', 0, ?, ?)",
            (socket.gethostname(), child.pid),
        )
        store.add_checkpoint("dead", "spec", "{}")  # a run of the call ledger's
        store.flush()
        (shown,) = store.run_page()
        assert shown["status"] == "interrupted"
        assert store.runs_to_resume() == ["dead"]
        assert store.claim_run("dead") is None
    finally:
        child.kill()
        child.wait()


def test_durable_fsync_makes_the_run_store_sync_every_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmflow.durable import batch, engine

    store = RunStore(tmp_path / "runs.sqlite")
    spec = RunSpec(run_id="r", workflow="w", source=None, items_total=1, keys_digest="k", code="c")
    monkeypatch.setattr(engine, "_launched", engine.DurableSettings(home=tmp_path))
    assert batch._ledger(spec, store) is not None
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    monkeypatch.setattr(engine, "_launched", engine.DurableSettings(home=tmp_path, fsync=True))
    batch._ledger(spec, store)
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
