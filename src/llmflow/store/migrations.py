"""The run store's schema, as named, append-only migrations.

Never edit or reorder a migration that has shipped: add a new one. Each runs once, in order,
and is recorded in `_migrations`.
"""

from __future__ import annotations

import sqlite3
import time

# A model call's share of run_call_totals, added (NEW) or taken away (OLD) by the triggers of
# m010 and m012; an update is the old row taken away and the new one added.
_ADD_CALL = """
            INSERT INTO run_call_totals SELECT NEW.run_id, coalesce(NEW.step_path, ''),
                NEW.model, date(NEW.started_at, 'unixepoch', 'localtime'), 1,
                NEW.cached <> 0,
                CASE WHEN NEW.cached THEN 0 ELSE coalesce(NEW.input_tokens, 0) END,
                CASE WHEN NEW.cached THEN 0 ELSE coalesce(NEW.output_tokens, 0) END,
                CASE WHEN NEW.cached OR NEW.cost IS NULL THEN 0
                     ELSE CAST(round(CAST(NEW.cost AS REAL) * 1e12) AS INTEGER) END,
                NOT NEW.cached AND NEW.cost IS NULL, NEW.status <> 'ok', NEW.latency_ms
                WHERE NEW.run_id IS NOT NULL
                ON CONFLICT DO UPDATE SET calls = calls + 1, cached = cached + excluded.cached,
                input_tokens = input_tokens + excluded.input_tokens,
                output_tokens = output_tokens + excluded.output_tokens,
                cost_pico = cost_pico + excluded.cost_pico,
                unpriced = unpriced + excluded.unpriced, failed = failed + excluded.failed,
                latency_ms = latency_ms + excluded.latency_ms;"""
_REMOVE_CALL = """
            UPDATE run_call_totals SET calls = calls - 1, cached = cached - (OLD.cached <> 0),
                input_tokens = input_tokens
                    - CASE WHEN OLD.cached THEN 0 ELSE coalesce(OLD.input_tokens, 0) END,
                output_tokens = output_tokens
                    - CASE WHEN OLD.cached THEN 0 ELSE coalesce(OLD.output_tokens, 0) END,
                cost_pico = cost_pico - CASE WHEN OLD.cached OR OLD.cost IS NULL THEN 0
                    ELSE CAST(round(CAST(OLD.cost AS REAL) * 1e12) AS INTEGER) END,
                unpriced = unpriced - (NOT OLD.cached AND OLD.cost IS NULL),
                failed = failed - (OLD.status <> 'ok'), latency_ms = latency_ms - OLD.latency_ms
                WHERE run_id = OLD.run_id AND step_path = coalesce(OLD.step_path, '')
                AND model = OLD.model AND day = date(OLD.started_at, 'unixepoch', 'localtime');
            DELETE FROM run_call_totals WHERE run_id = OLD.run_id
                AND step_path = coalesce(OLD.step_path, '') AND model = OLD.model
                AND day = date(OLD.started_at, 'unixepoch', 'localtime') AND calls <= 0;"""

# The run totals of the model calls already stored (m010, m012 with a condition added).
_CALL_TOTALS_OF_ROWS = """
        INSERT INTO run_call_totals SELECT run_id, coalesce(step_path, ''), model,
            date(started_at, 'unixepoch', 'localtime'), count(*), sum(cached <> 0),
            sum(CASE WHEN cached THEN 0 ELSE coalesce(input_tokens, 0) END),
            sum(CASE WHEN cached THEN 0 ELSE coalesce(output_tokens, 0) END),
            sum(CASE WHEN cached OR cost IS NULL THEN 0
                     ELSE CAST(round(CAST(cost AS REAL) * 1e12) AS INTEGER) END),
            sum(NOT cached AND cost IS NULL), sum(status <> 'ok'), sum(latency_ms)
            FROM model_calls WHERE run_id IS NOT NULL"""

MIGRATIONS: list[tuple[str, str]] = [
    (
        "m001_runs_items_steps_calls",
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,          -- running | ok | partial | failed | interrupted
            model TEXT,                    -- the default model of the run
            source TEXT,                   -- what the inputs came from (folder, mbox, ...)
            out_dir TEXT,
            items_total INTEGER NOT NULL DEFAULT 0,
            items_ok INTEGER NOT NULL DEFAULT 0,
            items_failed INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            started_at REAL NOT NULL,
            ended_at REAL
        );
        CREATE INDEX runs_started ON runs (started_at);
        CREATE TABLE items (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (id),
            key TEXT NOT NULL,             -- the item's name in its batch (e.g. a file name)
            status TEXT NOT NULL,          -- running | ok | failed | stopped
            output TEXT,                   -- JSON
            error TEXT,
            started_at REAL NOT NULL,
            ended_at REAL
        );
        CREATE INDEX items_run ON items (run_id);
        CREATE TABLE steps (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (id),
            item_id TEXT REFERENCES items (id),
            path TEXT NOT NULL,            -- e.g. email-triage/classify
            kind TEXT NOT NULL,            -- code | llm | ml | agent | chain | ...
            status TEXT NOT NULL,          -- ok | failed | stopped
            input TEXT,                    -- JSON
            output TEXT,                   -- JSON
            error TEXT,
            started_at REAL NOT NULL,
            latency_ms REAL
        );
        CREATE INDEX steps_run ON steps (run_id);
        CREATE TABLE model_calls (
            id TEXT PRIMARY KEY,
            run_id TEXT REFERENCES runs (id),
            item_id TEXT REFERENCES items (id),
            step_path TEXT,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            prompt TEXT NOT NULL,          -- JSON: messages, schema, tools, sampling
            response TEXT,                 -- answer text, or JSON tool calls
            finish_reason TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            latency_ms REAL NOT NULL,
            attempts INTEGER NOT NULL,
            status TEXT NOT NULL,          -- ok | failed
            error TEXT,
            started_at REAL NOT NULL
        );
        CREATE INDEX model_calls_run ON model_calls (run_id);
        """,
    ),
    (
        "m002_cost_and_response_cache",
        """
        ALTER TABLE model_calls ADD COLUMN cost TEXT;      -- dollars as a decimal; NULL: unknown
        ALTER TABLE model_calls ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE response_cache (
            key TEXT PRIMARY KEY,          -- sha256 of (model, messages, schema, tools, sampling)
            model TEXT NOT NULL,
            response TEXT NOT NULL,        -- JSON of the ModelResponse
            created_at REAL NOT NULL
        );
        """,
    ),
    (
        "m003_corrections",
        """
        CREATE TABLE corrections (
            item_id TEXT NOT NULL REFERENCES items (id),
            step TEXT NOT NULL,            -- the classifier step's name, e.g. category
            label TEXT NOT NULL,           -- the right answer, as a person says
            note TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (item_id, step)
        );
        """,
    ),
    (
        "m004_run_process",
        """
        ALTER TABLE runs ADD COLUMN host TEXT;             -- the machine running it now
        ALTER TABLE runs ADD COLUMN pid INTEGER;           -- its process there: a run whose
                                                           -- process is gone was interrupted
        """,
    ),
    (
        "m005_blobs",
        """
        CREATE TABLE blobs (
            sha TEXT PRIMARY KEY,          -- sha256 of the text
            text TEXT NOT NULL             -- a long text that steps and calls refer to by sha
        );
        CREATE INDEX steps_item ON steps (item_id);
        CREATE INDEX model_calls_item ON model_calls (item_id);
        """,
    ),
    (
        "m007_cascade_decisions",
        """
        CREATE TABLE cascade_decisions (
            id TEXT PRIMARY KEY,           -- the item and the cascade's path (one per item)
            run_id TEXT REFERENCES runs (id),
            item_id TEXT REFERENCES items (id),
            path TEXT NOT NULL,            -- e.g. email-triage/category
            step TEXT NOT NULL,            -- the cascade's name
            model TEXT,                    -- the model of its last tier (thresholds are per model)
            tier TEXT NOT NULL,            -- the tier that answered
            label TEXT NOT NULL,
            confidence REAL,
            attempts TEXT NOT NULL,        -- JSON: every tier tried, [{tier, label, confidence}]
            audit_label TEXT,              -- the last tier's label when it audited the answer
            created_at REAL NOT NULL
        );
        CREATE INDEX cascade_decisions_step ON cascade_decisions (step, created_at);
        """,
    ),
    (
        "m008_paged_reads",
        """
        -- the viewer pages a run's items in order, and lists runs by workflow
        CREATE INDEX items_run_started ON items (run_id, started_at);
        CREATE INDEX runs_workflow_started ON runs (workflow, started_at);
        """,
    ),
    (
        "m009_run_rows_in_order",
        """
        -- `runs show --json` streams a run's steps and calls in the order they started,
        -- straight off these indexes (no sort of the whole run); they replace (run_id) ones
        CREATE INDEX steps_run_started ON steps (run_id, started_at);
        CREATE INDEX model_calls_run_started ON model_calls (run_id, started_at);
        DROP INDEX steps_run;
        DROP INDEX model_calls_run;
        """,
    ),
    (
        "m010_run_totals",
        """
        -- A run's totals, kept by triggers as its rows are written (a resumed run's new rows
        -- count as they land): the viewer and `runs list|show` read them instead of summing
        -- a run's 100,000 items on every view. Model calls are written by upsert, never
        -- INSERT OR REPLACE (whose delete fires no trigger); steps are only appended.
        CREATE TABLE run_item_totals (
            run_id TEXT NOT NULL,
            status TEXT NOT NULL,
            items INTEGER NOT NULL,
            PRIMARY KEY (run_id, status)
        ) WITHOUT ROWID;
        CREATE TABLE run_step_totals (
            run_id TEXT NOT NULL,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,            -- the least kind seen at the path
            steps INTEGER NOT NULL,
            failed INTEGER NOT NULL,       -- steps not ok
            latency_ms REAL NOT NULL,      -- summed
            max_latency_ms REAL NOT NULL,
            first_at REAL NOT NULL,        -- when the path's first step started
            PRIMARY KEY (run_id, path)
        ) WITHOUT ROWID;
        CREATE TABLE run_call_totals (
            run_id TEXT NOT NULL,
            step_path TEXT NOT NULL,       -- '' for a call outside any step
            model TEXT NOT NULL,
            day TEXT NOT NULL,             -- the local date the calls started
            calls INTEGER NOT NULL,
            cached INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL, -- cache hits excluded
            output_tokens INTEGER NOT NULL,
            cost_pico INTEGER NOT NULL,    -- dollars x 10^12 (an exact sum), cache hits free
            unpriced INTEGER NOT NULL,     -- calls of unknown price (cache hits excluded)
            failed INTEGER NOT NULL,       -- calls not ok
            latency_ms REAL NOT NULL,      -- summed
            PRIMARY KEY (run_id, step_path, model, day)
        ) WITHOUT ROWID;
        CREATE INDEX run_call_totals_day ON run_call_totals (day);

        CREATE TRIGGER items_totals_insert AFTER INSERT ON items BEGIN
            INSERT INTO run_item_totals VALUES (NEW.run_id, NEW.status, 1)
                ON CONFLICT DO UPDATE SET items = items + 1;
        END;
        CREATE TRIGGER items_totals_update AFTER UPDATE OF run_id, status ON items
        WHEN OLD.status IS NOT NEW.status OR OLD.run_id IS NOT NEW.run_id BEGIN
            UPDATE run_item_totals SET items = items - 1
                WHERE run_id = OLD.run_id AND status = OLD.status;
            DELETE FROM run_item_totals WHERE run_id = OLD.run_id AND status = OLD.status
                AND items <= 0;
            INSERT INTO run_item_totals VALUES (NEW.run_id, NEW.status, 1)
                ON CONFLICT DO UPDATE SET items = items + 1;
        END;
        CREATE TRIGGER items_totals_delete AFTER DELETE ON items BEGIN
            UPDATE run_item_totals SET items = items - 1
                WHERE run_id = OLD.run_id AND status = OLD.status;
            DELETE FROM run_item_totals WHERE run_id = OLD.run_id AND status = OLD.status
                AND items <= 0;
        END;

        CREATE TRIGGER steps_totals_insert AFTER INSERT ON steps WHEN NEW.run_id IS NOT NULL
        BEGIN
            INSERT INTO run_step_totals VALUES (NEW.run_id, NEW.path, NEW.kind, 1,
                NEW.status <> 'ok', coalesce(NEW.latency_ms, 0), coalesce(NEW.latency_ms, 0),
                NEW.started_at)
                ON CONFLICT DO UPDATE SET kind = min(kind, excluded.kind), steps = steps + 1,
                failed = failed + excluded.failed, latency_ms = latency_ms + excluded.latency_ms,
                max_latency_ms = max(max_latency_ms, excluded.max_latency_ms),
                first_at = min(first_at, excluded.first_at);
        END;

        CREATE TRIGGER model_calls_totals_insert AFTER INSERT ON model_calls
        WHEN NEW.run_id IS NOT NULL BEGIN
"""
        + _ADD_CALL
        + """
        END;
        CREATE TRIGGER model_calls_totals_delete AFTER DELETE ON model_calls
        WHEN OLD.run_id IS NOT NULL BEGIN
"""
        + _REMOVE_CALL
        + """
        END;
        -- an update counts as the old row deleted and the new one inserted
        CREATE TRIGGER model_calls_totals_update AFTER UPDATE ON model_calls BEGIN
"""
        + _REMOVE_CALL
        + _ADD_CALL
        + """
        END;

        -- the runs and rows recorded before this migration
        INSERT INTO run_item_totals SELECT run_id, status, count(*) FROM items
            GROUP BY run_id, status;
        INSERT INTO run_step_totals SELECT run_id, path, min(kind), count(*),
            sum(status <> 'ok'), sum(coalesce(latency_ms, 0)), max(coalesce(latency_ms, 0)),
            min(started_at) FROM steps WHERE run_id IS NOT NULL GROUP BY run_id, path;
"""
        + _CALL_TOTALS_OF_ROWS
        + """ GROUP BY 1, 2, 3, 4;

        -- a run's items of one status, in order (the failed items); (run_id) is a prefix
        -- of items_run_started
        CREATE INDEX items_run_status_started ON items (run_id, status, started_at);
        DROP INDEX items_run;
        """,
    ),
    (
        "m011_call_checkpoints",
        """
        -- The output of each model call a durable run completed (`durable.ledger`): written
        -- in the same transaction as the call's record, read when the run's item resumes.
        -- `response` is the durable serializer's text (redacted, encrypted with
        -- LLMFLOW_ENCRYPTION_KEY when set).
        CREATE TABLE call_checkpoints (
            workflow_id TEXT NOT NULL,
            key TEXT NOT NULL,
            response TEXT NOT NULL,
            PRIMARY KEY (workflow_id, key)
        ) WITHOUT ROWID;
        """,
    ),
    (
        "m012_call_totals_of_ended_calls",
        # A durable run writes each call twice: `running` before it is sent, then its end.
        # m010 counted the first as a (failed, unpriced) call and the second as an update:
        # four trigger statements per call, on the default path's hot loop. Calls now count
        # once they end (or are marked interrupted), which is also what the totals mean: a
        # call in flight has no outcome, tokens or cost yet.
        """
        DROP TRIGGER model_calls_totals_insert;
        DROP TRIGGER model_calls_totals_delete;
        DROP TRIGGER model_calls_totals_update;
        CREATE TRIGGER model_calls_totals_insert AFTER INSERT ON model_calls
        WHEN NEW.run_id IS NOT NULL AND NEW.status <> 'running' BEGIN
"""
        + _ADD_CALL
        + """
        END;
        CREATE TRIGGER model_calls_totals_delete AFTER DELETE ON model_calls
        WHEN OLD.run_id IS NOT NULL AND OLD.status <> 'running' BEGIN
"""
        + _REMOVE_CALL
        + """
        END;
        -- an update takes the old row away (if it counted) and adds the new one (if it does)
        CREATE TRIGGER model_calls_totals_update_old AFTER UPDATE ON model_calls
        WHEN OLD.run_id IS NOT NULL AND OLD.status <> 'running' BEGIN
"""
        + _REMOVE_CALL
        + """
        END;
        CREATE TRIGGER model_calls_totals_update_new AFTER UPDATE ON model_calls
        WHEN NEW.run_id IS NOT NULL AND NEW.status <> 'running' BEGIN
"""
        + _ADD_CALL
        + """
        END;

        DELETE FROM run_call_totals;
"""
        + _CALL_TOTALS_OF_ROWS
        + """ AND status <> 'running' GROUP BY 1, 2, 3, 4;
        """,
    ),
]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations `db` lacks, each atomically. Returns the names applied."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    db.commit()
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        # executescript runs outside the sqlite3 module's transaction handling, so the
        # transaction is explicit: a migration and its record land together or not at all.
        db.executescript(
            f"BEGIN; {sql}; INSERT INTO _migrations VALUES ('{name}', {time.time()!r}); COMMIT;"
        )
        applied.append(name)
    return applied
