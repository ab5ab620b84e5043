"""The run store's call checkpoints: the output of each model call a durable run completed,
by the item workflow and the call's place in it (`durable.ledger` writes and reads them)."""

from __future__ import annotations

import sqlite3
from typing import Any


class CheckpointRecords:
    """`RunStore`'s call checkpoints (a mixin: `db` is its connection, `_pending` the queue
    `flush` commits)."""

    db: sqlite3.Connection
    _pending: list[tuple[str, tuple[Any, ...]]]

    def add_checkpoint(self, workflow_id: str, key: str, response: str) -> None:
        """Queue a call's checkpoint for the next `flush`. `response` is queued as it is: the
        durable serializer redacted it already, and may have encrypted it (redacting the
        ciphertext could corrupt it)."""
        self._pending.append(
            (
                "INSERT OR REPLACE INTO call_checkpoints (workflow_id, key, response) "
                "VALUES (?, ?, ?)",
                (workflow_id, key, response),
            )
        )

    def checkpoints(self, workflow_id: str) -> dict[str, str]:
        """The checkpointed calls of an item workflow, by key."""
        rows = self.db.execute(
            "SELECT key, response FROM call_checkpoints WHERE workflow_id = ?", (workflow_id,)
        )
        return {key: response for key, response in rows}
