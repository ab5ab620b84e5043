"""Model-call checkpoints in the run store, committed with the calls' own records.

A durable run records each model call in the run store when it starts (before the provider
sees it) and when it ends. The call ledger writes the call's output, its checkpoint, into the
same transaction as the end record, so a completed call costs no write of its own: as DBOS
steps (`gateway.py`'s other path) each call was two more transactions in DBOS's database, on
an executor thread (`bench/PROFILE-default.md`: most of the default path's CPU).

Commits are grouped: a call that starts or ends queues its rows and waits for the next
commit, which the first waiter schedules on the event loop and every call that starts or ends
in the same turn of the loop shares (a 200-way fan-out starts its 200 calls with one
commit). No call is sent before its start record is committed, and no call's output is used
before its checkpoint is, so the guarantees stay those of the DBOS steps: after a kill -9 a
resumed item answers each completed call from its checkpoint and makes again only the calls
that were in flight.

A call's checkpoint key is its step path and its turn among the item's calls at that path
(`model:triage/classify#0`): the order in which an item makes its calls is the order DBOS
numbered steps by, so a replay finds the same outputs at the same places.

Used for items that run in this process on a local run store; with a shared database (DBOS on
PostgreSQL, workers on other machines whose run stores are their own) calls stay DBOS steps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..store.sqlite import RunStore
from .serialization import JsonSerializer

T = TypeVar("T")


class CallLedger:
    """The checkpoints of one run's model calls, in its run store (one per run and thread)."""

    def __init__(self, store: RunStore, serializer: JsonSerializer) -> None:
        self.store = store
        self.serializer = serializer
        self._waiters: list[asyncio.Future[None]] | None = None

    async def commit(self) -> None:
        """Commit the store's queued writes, with those of every call that queues its own in
        this turn of the event loop (one transaction for all)."""
        loop = asyncio.get_running_loop()
        # Each waiter has its own future: one cancelled (its item stopped) leaves the
        # others' commit alone, without the cost of shielding a shared one.
        waiter = loop.create_future()
        if self._waiters is None:
            self._waiters = [waiter]
            loop.call_soon(self._flush)
        else:
            self._waiters.append(waiter)
        await waiter

    def _flush(self) -> None:
        waiters, self._waiters = self._waiters or [], None
        try:
            self.store.flush()
        except BaseException as e:  # every waiter gets the error: none of its rows are stored
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(e)
        else:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def item(self, workflow_id: str, *, local: bool, fresh: bool = False) -> ItemCalls:
        """The calls of item `workflow_id` (`<run id>/<index>`), with those it completed
        before (a resume; `fresh`: it never ran). `local`: the item runs without a DBOS
        workflow (it cannot wait for an approval)."""
        recorded = {} if fresh else self.store.checkpoints(workflow_id)
        return ItemCalls(self, workflow_id, recorded, local=local)

    # -- items that run without a DBOS workflow: their results, and the run's spec ----------

    def record_item(self, workflow_id: str, record: dict[str, Any]) -> None:
        """Queue an item's result (the next commit stores it, with the item's rows), in place
        of its calls' and effects' checkpoints: a finished item is never run again, so they
        would only fill the store (a resume returns the result)."""
        self.store.drop_checkpoints(workflow_id)
        self.store.add_checkpoint(workflow_id, ITEM, self.serializer.serialize(record))

    def finished_items(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The results of the run's items that finished, by item (`<run id>/<index>`)."""
        rows = self.store.run_checkpoints(run_id, ITEM)
        return {wid: self.serializer.deserialize(text) for wid, text in rows.items()}

    def save_spec(self, run_id: str, spec: dict[str, Any]) -> None:
        """Queue the run's spec (what `llmflow resume` rebuilds the run from)."""
        self.store.add_checkpoint(run_id, SPEC, self.serializer.serialize(spec))


ITEM = "item"
"""The key of an item's result among its checkpoints."""
SPEC = "spec"
"""The key of a run's spec (its workflow id is the run id)."""


@dataclass
class ItemCalls:
    """One item's model calls and side effects: which come from checkpoints, and recording
    the rest."""

    ledger: CallLedger
    workflow_id: str
    recorded: dict[str, str]
    """Checkpointed outputs by key (serialized), from earlier executions of the item."""
    local: bool = False
    """The item runs without a DBOS workflow."""
    turns: Counter[str] = field(default_factory=Counter)

    def key(self, path: str, kind: str = "model") -> str:
        """The key of the next call (or effect: `kind`) at `path`, taken before it awaits
        anything, in the order the item makes them."""
        name = f"{kind}:{path}"
        turn = self.turns[name]
        self.turns[name] = turn + 1
        return f"{name}#{turn}"

    def replay(self, key: str) -> Any:
        """The recorded output of the call at `key`, or None when it has none."""
        text = self.recorded.get(key)
        return None if text is None else self.ledger.serializer.deserialize(text)

    async def effect(self, path: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a side effect once: its result is checkpointed (and committed) when it
        completes, and a resumed item gets it from there instead of running it again. The
        one cut off mid-way runs again (`fn` sets its idempotency key)."""
        key = self.key(path, "effect")
        if key in self.recorded:
            return self.replay(key)  # type: ignore[no-any-return]
        token = _item.set(None)  # what the effect does inside is not the item's to replay
        try:
            result = await fn()
        finally:
            _item.reset(token)
        self.record(key, result)
        await self.ledger.commit()
        return result

    def record(self, key: str, response: Any) -> None:
        """Queue the call's checkpoint (the ledger's next commit stores it)."""
        self.ledger.store.add_checkpoint(
            self.workflow_id, key, self.ledger.serializer.serialize(response)
        )


_item: ContextVar[ItemCalls | None] = ContextVar("llmflow_item_calls", default=None)


def current_item() -> ItemCalls | None:
    """The calls of the item workflow this code runs in, when its run keeps a call ledger."""
    return _item.get()


def enter_item(calls: ItemCalls) -> Token[ItemCalls | None]:
    """Make `calls` the current item's (this task's, and the tasks it starts): `leave_item`
    with the token returned ends it."""
    return _item.set(calls)


def leave_item(token: Token[ItemCalls | None]) -> None:
    _item.reset(token)
