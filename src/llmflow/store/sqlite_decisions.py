"""The run store's classifier records: each cascade decision (`add_decision`), people's
corrections of them (`correct`), and the reads that calibration and distillation learn from
(`cascade_decisions`, `decisions`)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ..ids import new_id


class DecisionRecords:
    """`RunStore`'s classifier records (a mixin: `db` is its connection, `add` queues a
    write, `flush` commits the queue, `_unpacked` restores long texts)."""

    db: sqlite3.Connection

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def _unpacked(self, rows: list[sqlite3.Row], *columns: str) -> list[Any]:
        raise NotImplementedError

    def correct(self, item_id: str, step: str, label: str, note: str | None = None) -> None:
        """Record a person's label for a classifier step's decision on an item (it takes
        precedence over the model's when the step is distilled)."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO corrections VALUES (?, ?, ?, ?, ?)",
                (item_id, step, label, note, time.time()),
            )

    def add_decision(
        self,
        *,
        run_id: str | None,
        item_id: str | None,
        path: str,
        step: str,
        model: str | None,
        tier: str,
        label: str,
        confidence: float | None,
        attempts: Sequence[dict[str, Any]],
        audit_label: str | None,
        created_at: float,
    ) -> None:
        key = f"{item_id}:{path}" if item_id is not None else new_id()
        self.add(
            "INSERT OR REPLACE INTO cascade_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, run_id, item_id, path, step, model, tier, label, confidence,
             json.dumps(list(attempts)), audit_label, created_at),
        )  # fmt: skip

    def cascade_decisions(
        self,
        step: str,
        workflow: str | None = None,
        *,
        since: float | None = None,
        model: str | None = None,
    ) -> list[sqlite3.Row]:
        self.flush()
        rows: list[sqlite3.Row] = self.db.execute(
            "SELECT d.run_id, d.item_id, d.model, d.tier, d.label, d.confidence, d.attempts, "
            "d.audit_label, c.label AS correction, d.created_at FROM cascade_decisions d "
            "LEFT JOIN runs r ON r.id = d.run_id "
            "LEFT JOIN corrections c ON c.item_id = d.item_id AND c.step = d.step "
            "WHERE d.step = ? AND (r.workflow = ? OR ? IS NULL) AND d.created_at >= ? "
            "AND (d.model = ? OR ? IS NULL) ORDER BY d.created_at, d.rowid",
            (step, workflow, workflow, since or 0.0, model, model),
        ).fetchall()
        return rows

    def decisions(self, step: str, workflow: str | None = None) -> list[sqlite3.Row]:
        """Recorded outputs of LLM steps at or inside classifier step `step`, with their input
        and any correction of the item's decision: rows of (path, input, output, correction)."""
        self.flush()
        rows = self.db.execute(
            "SELECT s.path, s.input, s.output, c.label AS correction FROM steps s "
            "JOIN runs r ON r.id = s.run_id "
            "LEFT JOIN corrections c ON c.item_id = s.item_id AND c.step = ? "
            "WHERE s.kind = 'llm' AND s.status = 'ok' AND (r.workflow = ? OR ? IS NULL) "
            "AND ('/' || s.path || '/') LIKE ? ORDER BY s.started_at",
            (step, workflow, workflow, f"%/{step}/%"),
        ).fetchall()
        return self._unpacked(rows, "input", "output")
