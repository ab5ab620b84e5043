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
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..store.sqlite import RunStore
from .serialization import JsonSerializer


class CallLedger:
    """The checkpoints of one run's model calls, in its run store (one per run and thread)."""

    def __init__(self, store: RunStore, serializer: JsonSerializer) -> None:
        self.store = store
        self.serializer = serializer
        self._commit: asyncio.Future[None] | None = None

    async def commit(self) -> None:
        """Commit the store's queued writes, with those of every call that queues its own in
        this turn of the event loop (one transaction for all)."""
        if self._commit is None:
            loop = asyncio.get_running_loop()
            self._commit = loop.create_future()
            self._commit.add_done_callback(_retrieved)
            loop.call_soon(self._flush, self._commit)
        # shielded: one waiter cancelled (its item stopped) does not cancel the others' commit
        await asyncio.shield(self._commit)

    def _flush(self, done: asyncio.Future[None]) -> None:
        self._commit = None
        try:
            self.store.flush()
        except BaseException as e:  # every waiter gets the error: none of its rows are stored
            done.set_exception(e)
        else:
            done.set_result(None)

    def item(self, workflow_id: str) -> ItemCalls:
        """The calls of the item workflow `workflow_id`: those completed before (a resume)."""
        return ItemCalls(self, workflow_id, self.store.checkpoints(workflow_id))


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # read: an error every waiter was cancelled before seeing is no warning


@dataclass
class ItemCalls:
    """One item workflow's model calls: which come from checkpoints, and recording the rest."""

    ledger: CallLedger
    workflow_id: str
    recorded: dict[str, str]
    """Checkpointed outputs by key (serialized), from earlier executions of the item."""
    turns: Counter[str] = field(default_factory=Counter)

    def key(self, path: str) -> str:
        """The next call's key at `path` (taken before the call awaits anything, in the order
        the item makes its calls)."""
        turn = self.turns[path]
        self.turns[path] = turn + 1
        return f"model:{path}#{turn}"

    def replay(self, key: str) -> Any:
        """The recorded output of the call at `key`, or None when it has none."""
        text = self.recorded.get(key)
        return None if text is None else self.ledger.serializer.deserialize(text)

    def record(self, key: str, response: Any) -> None:
        """Queue the call's checkpoint (the ledger's next commit stores it)."""
        self.ledger.store.add_checkpoint(
            self.workflow_id, key, self.ledger.serializer.serialize(response)
        )


_item: ContextVar[ItemCalls | None] = ContextVar("llmflow_item_calls", default=None)


def current_item() -> ItemCalls | None:
    """The calls of the item workflow this code runs in, when its run keeps a call ledger."""
    return _item.get()


def enter_item(calls: ItemCalls) -> None:
    """Make `calls` the current item's (the item workflow's task, and the tasks it starts)."""
    _item.set(calls)
