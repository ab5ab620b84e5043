"""The run store: runs, items, steps and model calls in a local SQLite database.

Writes are queued in memory and committed in one transaction by `flush` (the recorder
flushes when an item ends), so recording costs the event loop one commit per item, not one
per row, and an item's records land together.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic_core

from ..errors import ConfigError, UnknownRunError
from ..ids import new_id
from ..redact import redact_all
from .base import CallRecord
from .migrations import migrate
from .sqlite_checkpoints import CheckpointRecords
from .sqlite_decisions import DecisionRecords
from .sqlite_reads import RUNS_NOW, PagedReads


def to_json(value: Any) -> str | None:
    """JSON text for any step value (pydantic models, dataclasses, paths...)."""
    if value is None:
        return None
    return pydantic_core.to_json(value, fallback=repr).decode()


def error_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


PACK_OVER = 16_384
"""JSON longer than this is searched for long strings to store once, by content."""
PAGE_SIZE = 2_048
"""The page size of a new run store (bytes)."""
BLOB_OVER = 4_096
"""A string longer than this is stored once in `blobs` and referred to as {"$blob": sha}."""


def _walk(value: Any, leaf: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$blob" in value:
            return leaf(value)
        return {k: _walk(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, leaf) for v in value]
    return leaf(value)


def _process_gone(host: str | None, pid: int | None) -> bool:
    """Whether the process that marked a run `running` is gone (on this machine; a run on
    another machine is taken at its word). A zombie is gone: killed, it stays in the process
    table until its parent reaps it, which in a container without an init may be never, and
    its run would then never be resumable."""
    if pid is None or host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """Whether process `pid` has exited and waits to be reaped (Linux's /proc; elsewhere
    False)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # the state follows the command name, which is in parentheses and may hold spaces
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


_CALL_UPDATE = "prompt = coalesce(nullif(excluded.prompt, ''), prompt), " + ", ".join(
    f"{c} = excluded.{c}"
    for c in ("model", "provider", "response", "finish_reason", "input_tokens",
              "output_tokens", "latency_ms", "attempts", "status", "error", "cost", "cached")
)  # fmt: skip
"""A model call recorded again (it ended): its outcome replaced. Where it belongs (run, item,
step) and when it started stay as first recorded, so its row's indexes are not rewritten;
so does the prompt when the end record's is empty (`runtime.recording`)."""


class RunStore(PagedReads, DecisionRecords, CheckpointRecords):
    """The SQLite run store (implements `store.base.Store`). One per process and database
    file; use from one thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(
                    f"cannot create the state directory {self.path.parent}: {e.strerror} "
                    "(set LLMFLOW_HOME to a writable folder)"
                ) from e
        try:
            self.db = sqlite3.connect(str(path), timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.create_function("llmflow_gone", 2, _process_gone, deterministic=False)
            # Pages of 2 KB (SQLite's default is 4 KB; a database made before keeps its own):
            # each commit writes every page it touched whole to the WAL, and a durable run
            # commits per model call, each touching ~10 pages (the rows' table and index
            # leaves, its totals) for a few hundred bytes of rows: ~8 % of a default-path
            # chain's CPU. 1 KB pages saved a little more there but made big rows (long
            # prompts) slower to write (bench/PROFILE-default.md).
            self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # A checkpoint (the WAL copied into the database, with an fsync) every 10,000
            # pages instead of SQLite's 1,000: a run rewrites the same few pages (its totals,
            # the tables' last leaves) in every commit, which a checkpoint copies once, so
            # rarer ones copy far less per run (bench/PROFILE-default.md). The WAL stays
            # under ~40 MB.
            self.db.execute("PRAGMA wal_autocheckpoint=10000")
            migrate(self.db)
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open the run store {path}: {e}") from e
        self._pending: list[tuple[str, tuple[Any, ...]]] = []

    def close(self) -> None:
        self.flush()
        self.db.close()

    # -- writing ----------------------------------------------------------------------------

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue a write for the next `flush`; every text in it without credentials
        (`llmflow.redact`): no key reaches the database, whatever a provider echoed."""
        self._pending.append((sql, redact_all(params)))

    def flush(self) -> None:
        """Commit queued writes in one transaction."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        with self.db:
            for sql, params in pending:
                self.db.execute(sql, params)

    def start_run(
        self,
        run_id: str,
        *,
        workflow: str,
        model: str | None,
        source: str | None,
        out_dir: str | None,
        items_total: int,
        commit: bool = True,
    ) -> None:
        """Record a run's start; `commit=False`: queued for the next commit (a durable run's
        call ledger commits it with the first item's first checkpoint, `durable.batch`)."""
        self.add(
            "INSERT INTO runs (id, workflow, status, model, source, out_dir, items_total, "
            "started_at, host, pid) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (run_id, workflow, model, source, out_dir, items_total, time.time(),
             socket.gethostname(), os.getpid()),
        )  # fmt: skip
        if commit:
            self.flush()

    def resume_run(self, run_id: str) -> None:
        """Mark a run as running again, in this process."""
        self.add(
            "UPDATE runs SET status = 'running', ended_at = NULL, host = ?, pid = ? WHERE id = ?",
            (socket.gethostname(), os.getpid(), run_id),
        )
        self.flush()

    def has_run(self, run_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is not None

    def interrupt_calls(self, run_id: str) -> None:
        """Model calls of a run left in flight by a process that died: they will never end."""
        self.add(
            "UPDATE model_calls SET status = 'interrupted', error = ? "
            "WHERE run_id = ? AND status = 'running'",
            ("the process died during this call (it may still be billed); the item ran it "
             "again on resume", run_id),
        )  # fmt: skip
        self.flush()

    def end_run(
        self,
        run_id: str,
        *,
        status: str,
        items_ok: int,
        items_failed: int,
        error: str | None,
        items_total: int | None = None,
    ) -> None:
        self.add(
            "UPDATE runs SET status = ?, items_ok = ?, items_failed = ?, error = ?, ended_at = ?, "
            "items_total = coalesce(?, items_total) WHERE id = ?",
            (status, items_ok, items_failed, error, time.time(), items_total, run_id),
        )
        self.flush()

    def start_item(self, item_id: str, *, run_id: str, key: str) -> None:
        # An item run again after a crash keeps its id (`runtime.runner.item_id`): one row.
        self.add(
            "INSERT INTO items (id, run_id, key, status, started_at) "
            "VALUES (?, ?, ?, 'running', ?) ON CONFLICT (id) DO UPDATE SET status = 'running', "
            "output = NULL, error = NULL, started_at = excluded.started_at, ended_at = NULL",
            (item_id, run_id, key, time.time()),
        )

    def end_item(
        self, item_id: str, *, status: str, output: Any, error: BaseException | None
    ) -> None:
        self.add(
            "UPDATE items SET status = ?, output = ?, error = ?, ended_at = ? WHERE id = ?",
            (status, self._pack(to_json(output)), error_text(error), time.time(), item_id),
        )

    def add_step(
        self,
        *,
        run_id: str | None,
        item_id: str | None,
        path: str,
        kind: str,
        input: Any,
        output: Any,
        error: BaseException | None,
        started_at: float,
        latency_s: float,
    ) -> None:
        self.add(
            "INSERT INTO steps (id, run_id, item_id, path, kind, status, input, output, error, "
            "started_at, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new_id(),
                run_id,
                item_id,
                path,
                kind,
                (getattr(error, "record_status", None) or "failed") if error else "ok",
                self._pack(to_json(input)),
                self._pack(to_json(output)),
                error_text(error),
                started_at,
                latency_s * 1000,
            ),
        )

    def add_call(
        self, call: CallRecord, *, run_id: str | None, item_id: str | None, step_path: str
    ) -> None:
        """Record a model call (replacing its `running` record, when it has one: by upsert,
        so that the run's totals count the update, `migrations` m010)."""
        self.add(
            "INSERT INTO model_calls (id, run_id, item_id, step_path, model, provider, "
            "prompt, response, finish_reason, input_tokens, output_tokens, latency_ms, attempts, "
            "status, error, started_at, cost, cached) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (id) DO UPDATE SET {_CALL_UPDATE}",
            (
                call.id, run_id, item_id, step_path, call.model, call.provider,
                self._pack(call.prompt),
                call.response, call.finish_reason, call.input_tokens, call.output_tokens,
                call.latency_ms, call.attempts, call.status, call.error, call.started_at,
                call.cost, int(call.cached),
            ),
        )  # fmt: skip

    # -- long texts, stored once -------------------------------------------------------------

    def _pack(self, text: str | None) -> str | None:
        """`text` (JSON) with its long strings stored once in `blobs` and referred to by their
        sha256: an item's 50 MB body, in the input of each of its steps and the prompt of each
        of its calls, is stored once."""
        if text is None or len(text) <= PACK_OVER:
            return text
        try:
            value = json.loads(text)
        except ValueError:
            return text

        def leaf(v: Any) -> Any:
            if isinstance(v, str) and len(v) > BLOB_OVER:
                sha = hashlib.sha256(v.encode()).hexdigest()
                self.add("INSERT OR IGNORE INTO blobs (sha, text) VALUES (?, ?)", (sha, v))
                return {"$blob": sha}
            return v

        return json.dumps(_walk(value, leaf), ensure_ascii=False, separators=(",", ":"))

    def _unpack(self, text: str | None) -> str | None:
        if text is None or '{"$blob":' not in text:
            return text
        self.flush()

        def leaf(v: Any) -> Any:
            if isinstance(v, dict):
                row = self.db.execute("SELECT text FROM blobs WHERE sha = ?", (v["$blob"],))
                found = row.fetchone()
                return found[0] if found else v
            return v

        return json.dumps(_walk(json.loads(text), leaf), ensure_ascii=False, separators=(",", ":"))

    def _unpacked(self, rows: list[sqlite3.Row], *columns: str) -> list[Any]:
        """Rows with their packed columns restored (rows that need it become dicts)."""
        out: list[Any] = []
        for row in rows:
            if any(row[c] is not None and '{"$blob":' in row[c] for c in columns):
                d = dict(row)
                for c in columns:
                    d[c] = self._unpack(d[c])
                out.append(d)
            else:
                out.append(row)
        return out

    # -- the response cache -----------------------------------------------------------------

    def cache_get(self, key: str) -> str | None:
        """A cached response's JSON, or None."""
        row = self.db.execute(
            "SELECT response FROM response_cache WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def cache_put(self, key: str, model: str, response: str) -> None:
        """Cache a response's JSON (lands with the next `flush`)."""
        self.add(
            "INSERT OR REPLACE INTO response_cache (key, model, response, created_at) "
            "VALUES (?, ?, ?, ?)",
            (key, model, response, time.time()),
        )

    def cache_drop(self, key: str) -> None:
        """Forget a cached response (lands with the next `flush`)."""
        self.add("DELETE FROM response_cache WHERE key = ?", (key,))

    # -- reading ----------------------------------------------------------------------------

    def runs(self, limit: int = 20) -> list[sqlite3.Row]:
        """The newest runs (their calls, tokens and cost: `usage`, from their totals), with
        their items counted as they stand now (`items_ok`, `items_failed`), so
        that a run still going, or whose process died, shows its true progress."""
        return self.db.execute(f"{RUNS_NOW} ORDER BY started_at DESC LIMIT ?", (limit,)).fetchall()

    def find_run(self, run_id: str) -> sqlite3.Row:
        """The run whose id is `run_id` or starts with it (a unique prefix)."""
        rows = self.db.execute(
            f"{RUNS_NOW} WHERE id LIKE ? ORDER BY started_at DESC LIMIT 2",
            (run_id.replace("%", "").replace("_", "") + "%",),
        ).fetchall()
        if not rows:
            raise UnknownRunError(f"no run with id {run_id!r}: `llmflow runs list` shows the runs")
        if len(rows) > 1 and rows[0]["id"] != run_id:
            raise ConfigError(f"run id prefix {run_id!r} is ambiguous: give more characters")
        row: sqlite3.Row = rows[0]
        return row

    def call_costs(self, run_id: str | None = None) -> list[sqlite3.Row]:
        """Every model call (of one run, or all) with what the cost reports group by."""
        where = "WHERE c.run_id = ?" if run_id else ""
        return self.db.execute(
            "SELECT r.workflow, c.run_id, c.step_path, c.model, c.provider, c.cost, c.cached, "
            "COALESCE(c.input_tokens, 0) AS input_tokens, "
            "COALESCE(c.output_tokens, 0) AS output_tokens, "
            "date(c.started_at, 'unixepoch', 'localtime') AS day "
            f"FROM model_calls c JOIN runs r ON r.id = c.run_id {where} ORDER BY c.started_at",
            (run_id,) if run_id else (),
        ).fetchall()

    def latest_run(self, workflow: str, model: str) -> sqlite3.Row | None:
        """The newest finished run (ok or partial) of `workflow` on `model`."""
        row: sqlite3.Row | None = self.db.execute(
            f"{RUNS_NOW} WHERE workflow = ? AND model = ? AND status IN ('ok', 'partial') "
            "ORDER BY started_at DESC LIMIT 1",
            (workflow, model),
        ).fetchone()
        return row

    def find_item(self, run_id: str, key: str) -> sqlite3.Row:
        """The item of run `run_id` (a unique prefix) whose key is `key`."""
        run = self.find_run(run_id)
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM items WHERE run_id = ? AND key = ?", (run["id"], key)
        ).fetchone()
        if row is None:
            raise ConfigError(
                f"run {run['id'][:12]} has no item {key!r}: `llmflow runs show` lists its items"
            )
        return row

    def rows(self, table: str, run_id: str) -> list[sqlite3.Row]:
        return list(self.stream(table, run_id))

    def stream(self, table: str, run_id: str) -> Iterator[Any]:
        """A run's items, steps or model calls in the order they started, read as they are
        iterated (through the (run_id, started_at) indexes: nothing sorted, nothing held)."""
        if table not in {"items", "steps", "model_calls"}:
            raise ValueError(table)
        packed = {"steps": ("input", "output"), "model_calls": ("prompt",), "items": ("output",)}
        cursor = self.db.execute(
            f"SELECT * FROM {table} WHERE run_id = ? ORDER BY started_at, rowid", (run_id,)
        )
        while chunk := cursor.fetchmany(500):
            yield from self._unpacked(chunk, *packed[table])
