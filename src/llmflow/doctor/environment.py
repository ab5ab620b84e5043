"""The environment's checks: Python, the settings, the state directory, the run store, the
durable runs' database, Graphviz."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .check import Check

if TYPE_CHECKING:
    from ..settings import Settings

DB_TIMEOUT_S = 3


def check_python(version: tuple[int, ...] | None = None) -> Check:
    version = version or tuple(sys.version_info[:3])
    shown = ".".join(map(str, version[:3]))
    if tuple(version[:2]) < (3, 11):
        return Check(
            "python",
            "fail",
            f"{shown} ({sys.executable}): llmflow needs 3.11 or later",
            "install Python 3.11+ and recreate the environment (`make clean setup`)",
        )
    return Check("python", "ok", f"{shown} ({sys.executable})")


def load_settings() -> tuple[Settings | None, Check]:
    """The settings from the environment and `.env`, and whether they are valid."""
    from pydantic import ValidationError

    from ..errors import pydantic_message
    from ..settings import Settings

    try:
        settings = Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) + ': ' if error['loc'] else ''}"
            f"{pydantic_message(error)}"
            for error in e.errors()
        )
        return None, Check(
            "settings", "fail", problems, "correct the variable in the environment or in .env"
        )
    source = " and .env" if Path(".env").is_file() else ""
    return settings, Check("settings", "ok", f"read from the environment{source}")


def check_state_dir(home: Path) -> Check:
    """The state directory exists and is writable, or can be created."""
    name = "state directory"
    fix = "set LLMFLOW_HOME to a writable folder (default ~/.llmflow)"
    if home.exists():
        if not home.is_dir():
            return Check(name, "fail", f"{home} exists but is not a directory", fix)
        try:
            with tempfile.TemporaryFile(dir=home):
                pass
        except OSError as e:
            return Check(name, "fail", f"{home} is not writable: {e.strerror or e}", fix)
        return Check(name, "ok", f"{home} (writable)")
    parent = home.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return Check(name, "fail", f"{home} cannot be created: {parent} is not a directory", fix)
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check(name, "fail", f"{home} cannot be created: {parent} is not writable", fix)
    return Check(name, "ok", f"{home} (created on the first run)")


def check_run_store(path: Path) -> Check:
    """The run store opens, and its schema is current (pending migrations are applied, as
    every command does; a store written by a newer llmflow is reported)."""
    from ..errors import ConfigError
    from ..store.migrations import MIGRATIONS
    from ..store.sqlite import RunStore

    name = "run store"
    known = [m for m, _ in MIGRATIONS]
    if not path.exists():
        try:
            RunStore(":memory:").close()
        except ConfigError as e:
            return Check(name, "fail", f"the schema does not apply on this SQLite: {e}")
        return Check(name, "ok", f"{path} not created yet (schema checked in memory)")
    try:
        store = RunStore(path)
    except ConfigError as e:
        return Check(
            name,
            "fail",
            str(e),
            f"if the file is damaged, move it aside (`mv {path} {path}.bad`): a new one "
            "is created on the next run",
        )
    try:
        applied = [row[0] for row in store.db.execute("SELECT name FROM _migrations")]
        runs = store.db.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error as e:
        return Check(name, "fail", f"cannot read {path}: {e}", f"move {path} aside")
    finally:
        store.close()
    unknown = sorted(set(applied) - set(known))
    if unknown:
        return Check(
            name,
            "warn",
            f"{path} was written by a newer llmflow (migrations unknown here: "
            f"{', '.join(unknown)})",
            "upgrade llmflow, or set LLMFLOW_HOME to another folder",
        )
    return Check(name, "ok", f"{path}: {runs} runs, schema current ({known[-1]})")


def check_durable_db(home: Path, database_url: str | None) -> Check:
    """The durable runs' database: SQLite in the state directory, or PostgreSQL at
    LLMFLOW_DATABASE_URL, reachable (DBOS is not started)."""
    name = "durable database"
    if not database_url:
        path = home / "durable.sqlite"
        if not path.exists():
            return Check(name, "ok", f"SQLite {path} (created on the first durable run)")
        return _check_sqlite(name, path)
    if database_url.startswith("sqlite:"):
        return _check_sqlite(name, Path(urlsplit(database_url).path))
    scheme, sep, rest = database_url.partition("://")
    if not sep or not scheme.startswith(("postgres", "postgresql")):
        return Check(
            name,
            "fail",
            f"LLMFLOW_DATABASE_URL must start with postgresql:// (got {scheme.split(':')[0]}:)",
            "set LLMFLOW_DATABASE_URL=postgresql://user:password@host:5432/llmflow, or unset "
            "it to keep durable state in SQLite",
        )
    return check_postgres(f"postgresql://{rest}")


def _check_sqlite(name: str, path: Path) -> Check:
    try:
        db = sqlite3.connect(str(path), timeout=DB_TIMEOUT_S)
        try:
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as e:
        return Check(
            name,
            "fail",
            f"cannot open SQLite {path}: {e}",
            f"if the file is damaged, move it aside (`mv {path} {path}.bad`): interrupted "
            "durable runs in it can then no longer be resumed",
        )
    return Check(name, "ok", f"SQLite {path} ({tables} tables)")


def check_postgres(url: str) -> Check:
    """PostgreSQL at `url` accepts a connection within a few seconds."""
    import psycopg

    name = "durable database"
    shown = redact_dsn(url)
    try:
        with psycopg.connect(url, connect_timeout=DB_TIMEOUT_S) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        return Check(
            name,
            "fail",
            f"cannot connect to PostgreSQL at {shown}: {reason}",
            "start the server, or correct LLMFLOW_DATABASE_URL (unset it to keep durable "
            "state in SQLite)",
        )
    server = version[0] if version else "unknown"
    return Check(name, "ok", f"PostgreSQL {server} at {shown}")


def redact_dsn(url: str) -> str:
    """A database URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def check_graphviz() -> Check:
    dot = shutil.which("dot")
    if dot is None:
        return Check(
            "graphviz",
            "warn",
            "`dot` is not on PATH: `llmflow graph --format svg|png` cannot draw images "
            "(Mermaid output works)",
            "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
            "graphviz)",
        )
    return Check("graphviz", "ok", dot)


# -- the provider -----------------------------------------------------------------------------
