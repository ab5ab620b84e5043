"""The run store's call checkpoints: the output of each model call a durable run completed,
by the item workflow and the call's place in it (`durable.ledger` writes and reads them)."""

from __future__ import annotations

import os
import socket
import sqlite3
from typing import Any


class CheckpointRecords:
    """`RunStore`'s call checkpoints, and what resuming a run needs (a mixin: `db` is its
    connection, `_pending` the queue `flush` commits)."""

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

    def drop_checkpoints(self, workflow_id: str) -> None:
        """Queue the removal of an item workflow's checkpoints."""
        self._pending.append(("DELETE FROM call_checkpoints WHERE workflow_id = ?", (workflow_id,)))

    def checkpoints(self, workflow_id: str) -> dict[str, str]:
        """The checkpointed calls of an item workflow, by key."""
        rows = self.db.execute(
            "SELECT key, response FROM call_checkpoints WHERE workflow_id = ?", (workflow_id,)
        )
        return {key: response for key, response in rows}

    def run_checkpoints(self, run_id: str, key: str) -> dict[str, str]:
        """The checkpoints named `key` of a run's items (`<run id>/<index>`), by item."""
        # the items' ids are the run id and "/": a range of the primary key ("0" follows "/")
        rows = self.db.execute(
            "SELECT workflow_id, response FROM call_checkpoints "
            "WHERE workflow_id > ? AND workflow_id < ? AND key = ?",
            (f"{run_id}/", f"{run_id}0", key),
        )
        return {workflow_id: response for workflow_id, response in rows}

    def runs_to_resume(self) -> list[str]:
        """Runs with a spec in this store (they ran without DBOS workflows) that stopped
        before the end: interrupted, or still marked running by a process that is gone."""
        rows = self.db.execute(
            "SELECT r.id FROM runs r JOIN call_checkpoints c ON c.workflow_id = r.id "
            "AND c.key = 'spec' WHERE r.status = 'interrupted' "
            "OR (r.status = 'running' AND llmflow_gone(r.host, r.pid)) "
            "ORDER BY r.started_at DESC"
        )
        return [row[0] for row in rows]

    def claim_run(self, run_id: str) -> tuple[str, int] | None:
        """Take run `run_id` over for this process, unless another process that is alive
        runs it: then nothing changes and that process (host, pid) is returned. One
        statement, so two processes resuming the run at once cannot both take it."""
        me = (socket.gethostname(), os.getpid())
        with self.db:
            taken = self.db.execute(
                "UPDATE runs SET host = ?, pid = ? WHERE id = ? AND NOT (status = 'running' "
                "AND NOT llmflow_gone(host, pid) AND NOT (host = ? AND pid = ?))",
                (*me, run_id, *me),
            ).rowcount
        if taken:
            return None
        row = self.db.execute("SELECT host, pid FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))
