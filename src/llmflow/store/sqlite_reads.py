"""The run store's paged reads (the viewer, `runs list|show`): pages stay fast on a run of
100,000 items because nothing here sums a run's rows. A run's totals (items by status, per
step, per step/model/day of its model calls) are kept in `run_*_totals` by triggers as its
rows are written (`migrations` m010), and pages of items are read through indexes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

RUNS_NOW = """SELECT id, workflow, model, source, out_dir, items_total, error, started_at,
    ended_at, host, pid,
    CASE WHEN status = 'running' AND llmflow_gone(host, pid) THEN 'interrupted'
         ELSE status END AS status,
    CASE WHEN status = 'running' THEN coalesce((SELECT items FROM run_item_totals t
         WHERE t.run_id = runs.id AND t.status = 'ok'), 0) ELSE items_ok END AS items_ok,
    CASE WHEN status = 'running' THEN coalesce((SELECT items FROM run_item_totals t
         WHERE t.run_id = runs.id AND t.status = 'failed'), 0) ELSE items_failed END
         AS items_failed
    FROM runs"""
"""Runs as they stand now: one still marked running whose process died shows as
`interrupted`, and a running one counts its items so far (from its totals)."""

USAGE = """sum(calls) AS calls, sum(cached) AS cached, sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens, sum(cost_pico) / 1e12 AS cost,
    sum(cost_pico) AS cost_pico, sum(unpriced) AS unpriced, sum(failed) AS failed,
    sum(latency_ms) / sum(calls) AS latency_ms"""
"""What a set of model calls used, summed over rows of `run_call_totals` (the columns of
`usage`)."""


class PagedReads:
    """`RunStore`'s reads for the viewer and `runs list|show` (a mixin: `db` is its
    connection, `_unpacked` restores long texts)."""

    db: sqlite3.Connection

    def _unpacked(self, rows: list[sqlite3.Row], *columns: str) -> list[Any]:
        raise NotImplementedError

    def run_page(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        workflow: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[sqlite3.Row]:
        """Runs newest first, filtered by workflow, status (as it stands now) and start time."""
        where: list[str] = ["1"]
        params: list[Any] = []
        if workflow:
            where.append("workflow = ?")
            params.append(workflow)
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        if until is not None:
            where.append("started_at < ?")
            params.append(until)
        sql = f"{RUNS_NOW} WHERE {' AND '.join(where)}"
        if status:
            sql = f"SELECT * FROM ({sql}) WHERE status = ?"
            params.append(status)
        return self.db.execute(
            f"{sql} ORDER BY started_at DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        ).fetchall()

    def workflows(self) -> list[str]:
        """The workflows that have runs, by name."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT workflow FROM runs ORDER BY 1")]

    def usage(self, run_ids: Sequence[str]) -> dict[str, sqlite3.Row]:
        """Per run, from its totals: calls, cached, input_tokens, output_tokens (cache hits
        excluded), cost (dollars, as a float; cache hits free; `usage_cost` gives it exact),
        unpriced (calls of unknown price), failed (calls not ok), latency_ms (mean)."""
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        rows = self.db.execute(
            f"SELECT run_id, {USAGE} FROM run_call_totals WHERE run_id IN ({marks}) "
            "GROUP BY run_id",
            tuple(run_ids),
        ).fetchall()
        return {r["run_id"]: r for r in rows}

    def item_page(
        self, run_id: str, *, limit: int = 50, offset: int = 0, status: str | None = None
    ) -> list[Any]:
        """A run's items in the order they started, `limit` from `offset` (-1: all). The
        page is found in an index alone (items_run_started, or items_run_status_started
        with a status), and only its rows are read."""
        where = "run_id = ?" + (" AND status = ?" if status else "")
        rows = self.db.execute(
            "SELECT * FROM items WHERE rowid IN (SELECT rowid FROM items "
            f"WHERE {where} ORDER BY started_at, rowid LIMIT ? OFFSET ?) "
            "ORDER BY started_at, rowid",
            (run_id, *([status] if status else []), limit, offset),
        ).fetchall()
        return self._unpacked(rows, "output")

    def item_counts(self, run_id: str) -> dict[str, int]:
        """A run's items counted by status (from its totals)."""
        rows = self.db.execute(
            "SELECT status, items FROM run_item_totals WHERE run_id = ? AND items > 0",
            (run_id,),
        )
        return {r[0]: r[1] for r in rows}

    def step_usage(self, run_id: str) -> list[sqlite3.Row]:
        """Per step path of a run, from its totals: kind, steps, steps_failed (not ok), mean
        and max latency (step_ms, step_max_ms), and its model calls' usage (`usage`'s
        columns), in the order the paths first ran."""
        return self.db.execute(
            "SELECT s.path, s.kind, s.steps, s.failed AS steps_failed, "
            "s.latency_ms / s.steps AS step_ms, s.max_latency_ms AS step_max_ms, "
            "s.first_at AS first, c.* FROM run_step_totals s LEFT JOIN "
            f"(SELECT step_path, {USAGE} FROM run_call_totals WHERE run_id = ? "
            "GROUP BY step_path) c ON c.step_path = s.path WHERE s.run_id = ? ORDER BY s.first_at",
            (run_id, run_id),
        ).fetchall()

    def item(self, item_id: str) -> sqlite3.Row | None:
        """One item by its id, or None."""
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM items WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            return None
        unpacked: sqlite3.Row = self._unpacked([row], "output")[0]
        return unpacked

    def item_rows(self, table: str, item_id: str) -> list[Any]:
        """An item's steps or model calls in the order they started, long texts restored."""
        if table not in {"steps", "model_calls"}:
            raise ValueError(table)
        rows = self.db.execute(
            f"SELECT * FROM {table} WHERE item_id = ? ORDER BY started_at, rowid", (item_id,)
        ).fetchall()
        return self._unpacked(rows, *(("input", "output") if table == "steps" else ("prompt",)))

    def call(self, call_id: str) -> sqlite3.Row | None:
        """One model call by its id, or None."""
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM model_calls WHERE id = ?", (call_id,)
        ).fetchone()
        if row is None:
            return None
        unpacked: sqlite3.Row = self._unpacked([row], "prompt")[0]
        return unpacked

    def cost_by(self, by: str, *, since: float | None = None) -> list[sqlite3.Row]:
        """Model calls' usage (`usage`'s columns) grouped by day, workflow, step or model
        (column `key`), from the runs' totals: the calls since the local day of `since`
        (whole days), the costliest first (by day: in order of days)."""
        key = {
            "day": "t.day",
            "workflow": "r.workflow",
            "step": "nullif(t.step_path, '')",
            "model": "t.model",
        }[by]
        order = "key" if by == "day" else "cost DESC, calls DESC"
        return self.db.execute(
            f"SELECT {key} AS key, {USAGE} FROM run_call_totals t "
            "JOIN runs r ON r.id = t.run_id "
            "WHERE t.day >= coalesce(date(?, 'unixepoch', 'localtime'), '') "
            f"GROUP BY 1 ORDER BY {order}",
            (since,),
        ).fetchall()
