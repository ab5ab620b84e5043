"""The durable engine: DBOS Transact, configured for llmflow, one per process.

The system database is SQLite (WAL) in the state directory by default, or the PostgreSQL
database at LLMFLOW_DATABASE_URL, which is what lets workers on several machines share
runs. llmflow's own run store stays where it is; DBOS keeps its own tables.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ConfigError
from ..redact import redact
from .serialization import JsonSerializer

if TYPE_CHECKING:
    from dbos import DBOSConfig

    from ..runtime.runner import Workflow

APP_NAME = "llmflow"
APP_VERSION = "llmflow-durable-1"
"""Fixed on purpose: DBOS's default (a hash of the registered code) would leave runs
started before an upgrade unrecoverable. llmflow checks each run's workflow fingerprint
itself, and says clearly when the code changed (`CodeChangedError`)."""


class DurableSettings(BaseSettings):
    """The durable engine's configuration, from the environment and `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default_factory=lambda: Path.home() / ".llmflow", validation_alias="LLMFLOW_HOME"
    )
    """The state directory (the SQLite system database lives there)."""
    database_url: str | None = Field(default=None, validation_alias="LLMFLOW_DATABASE_URL")
    """postgresql://... to share runs between machines; unset: SQLite in `home`."""
    encryption_key: SecretStr | None = Field(
        default=None, validation_alias="LLMFLOW_ENCRYPTION_KEY"
    )
    """A Fernet key: encrypt every stored prompt, output and input."""
    fsync: bool = Field(default=False, validation_alias="LLMFLOW_DURABLE_FSYNC")
    """SQLite: flush every checkpoint to the disk before going on, so that checkpoints survive
    a power cut or an OS crash too. Off, checkpoints survive the process being killed (kill
    -9, a crash), which is what resuming needs, and cost less (WAL, synchronous=NORMAL)."""

    @property
    def sqlite_path(self) -> Path:
        return self.home / "durable.sqlite"

    @property
    def system_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith(("postgres://", "postgresql://")):
                # SQLAlchemy's name for psycopg 3, the driver llmflow installs.
                return "postgresql+psycopg://" + url.split("://", 1)[1]
            if url.startswith(("postgresql+", "sqlite:")):
                return url
            raise ConfigError(
                f"LLMFLOW_DATABASE_URL must start with postgresql:// (got {url.split(':')[0]}:)"
            )
        return f"sqlite:///{self.sqlite_path}"

    @property
    def shared(self) -> bool:
        """Runs go through a queue that workers on any machine take from."""
        url = self.database_url
        return url is not None and not url.startswith("sqlite:")

    def serializer(self) -> JsonSerializer:
        key = self.encryption_key.get_secret_value() if self.encryption_key else None
        return JsonSerializer(key)


def process_executor_id(kind: str = "cli") -> str:
    """A unique executor id for this process: `kind:host:pid:random`. DBOS recovers an
    executor's runs only when asked to, so a second process never takes over the runs of
    one still alive."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def executor_alive(executor_id: str) -> bool | None:
    """Whether the process behind an executor id is alive: None when it ran elsewhere."""
    parts = executor_id.split(":")
    if len(parts) != 4 or parts[1] != socket.gethostname():
        return None
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


_launched: DurableSettings | None = None
"""The configuration of the durable engine in this process (`configure` or `launch`)."""
_dbos_running = False
_loader: WorkflowLoader | None = None

WorkflowLoader = Callable[[str], "Workflow"]
"""Finds a workflow by the reference a run was started with (a registered name, a workflow
file, `module:attr`): `llmflow.workflows.load_workflow`, handed in by whoever launches the
engine, so that the engine does not depend on the layers that define workflows."""


def configure(
    settings: DurableSettings | None = None, *, load_workflow: WorkflowLoader | None = None
) -> DurableSettings:
    """Set up durable runs in this process without starting DBOS: enough for runs whose
    items run without DBOS workflows (no step waits for a person, the run is not shared;
    `durable.batch`), which then never import it (~0.75 s of a command). `launch` starts it."""
    global _launched, _loader
    if load_workflow is not None:
        _loader = load_workflow
    if _launched is None:
        _launched = settings or DurableSettings()
    return _launched


def launch(
    settings: DurableSettings | None = None,
    *,
    executor_id: str | None = None,
    listen_queues: list[str] | None = None,
    load_workflow: WorkflowLoader | None = None,
) -> DurableSettings:
    """Start DBOS in this process (once; later calls return the running configuration).

    `listen_queues`: the queues this process takes runs from (None: none, as for the CLI;
    a worker names the run queue). `load_workflow` rebuilds the workflow of a run this
    process did not start (a resume, a worker's item); without it only runs started here run.
    """
    global _launched, _dbos_running
    settings = configure(settings, load_workflow=load_workflow)
    if _dbos_running:
        return settings
    from dbos import DBOS

    from .dbos_api import as_dbos_serializer

    if not settings.database_url:
        _prepare_sqlite(settings.sqlite_path)
    _quiet_console_log()
    # Importing registers llmflow's workflows before launch, as DBOS requires.
    from . import approval, item_workflows  # noqa: F401

    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": settings.system_database_url,
        "application_version": APP_VERSION,
        "executor_id": executor_id or process_executor_id(),
        "serializer": as_dbos_serializer(settings.serializer()),
        "log_level": os.environ.get("LLMFLOW_DBOS_LOG_LEVEL", "WARNING"),
        "notification_listener_polling_interval_sec": 0.1,
    }
    if not settings.shared:
        config["db_engine_kwargs"] = _sqlite_engine_kwargs(fsync=settings.fsync)
    DBOS(config=config)
    DBOS.listen_queues(listen_queues or [])
    try:
        DBOS.launch()
    except Exception as e:
        DBOS.destroy(destroy_registry=False)
        _launched = None
        raise ConfigError(
            f"cannot open the durable system database {_redact(settings.system_database_url)}: "
            f"{e} (check LLMFLOW_DATABASE_URL or LLMFLOW_HOME)"
        ) from e
    _dbos_running = True
    return settings


def dbos_running() -> bool:
    """Whether DBOS runs in this process (`launch`)."""
    return _dbos_running


def shutdown() -> None:
    """Stop the durable engine in this process (runs in flight stay resumable)."""
    global _launched, _dbos_running
    if _dbos_running:
        from dbos import DBOS

        DBOS.destroy(destroy_registry=False, workflow_completion_timeout_sec=0)
        _dbos_running = False
    _launched = None


def launched() -> DurableSettings | None:
    return _launched


def workflow_loader() -> WorkflowLoader:
    """How to rebuild a run's workflow from its reference (see `launch`)."""
    if _loader is None:
        raise ConfigError(
            "the durable engine cannot rebuild this run's workflow: launch it with "
            "launch(load_workflow=llmflow.workflows.load_workflow)"
        )
    return _loader


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is now (DBOS's own handler keeps the stream it was
    created with, which the CLI's tests and redirections close or replace)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _RedactingFormatter(logging.Formatter):
    """Log lines (and their tracebacks) without credentials: DBOS logs the errors of steps,
    whose messages may quote what a provider said."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _quiet_console_log() -> None:
    """DBOS's console log through llmflow's handler (DBOS adds its own only when none is set)."""
    logger = logging.getLogger("dbos")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_RedactingFormatter("%(levelname)s dbos: %(message)s"))
        handler.name = "__dbos_console_log_handler__"
        logger.addHandler(handler)
        logger.propagate = False


class _NormalSyncConnection(sqlite3.Connection):
    """A SQLite connection that syncs the WAL at checkpoints only (synchronous=NORMAL): a
    commit survives the process being killed, without an fsync per commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA synchronous=NORMAL")


def _sqlite_engine_kwargs(*, fsync: bool) -> dict[str, Any]:
    """DBOS's SQLAlchemy engine options for the SQLite system database: no liveness ping
    before each transaction (a local file has no connection to lose: the ping was one more
    statement per checkpoint), and synchronous=NORMAL unless `fsync`."""
    options: dict[str, Any] = {"pool_pre_ping": False}
    if not fsync:
        options["connect_args"] = {"factory": _NormalSyncConnection}
    return options


def _prepare_sqlite(path: Path) -> None:
    """Create the SQLite file in WAL mode (it persists in the file): a checkpoint costs
    ~5 ms instead of ~26 ms with the rollback journal."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(
            f"cannot create the durable database {path}: {e} (set LLMFLOW_HOME to a writable "
            "folder)"
        ) from e


def _redact(url: str) -> str:
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url
