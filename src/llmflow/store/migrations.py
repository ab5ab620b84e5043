"""The run store's schema, as named, append-only migrations.

Never edit or reorder a migration that has shipped: add a new one. Each runs once, in order,
and is recorded in `_migrations`.
"""

from __future__ import annotations

import sqlite3
import time

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
