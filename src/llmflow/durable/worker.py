"""`llmflow worker`: take items of runs from the shared queue, and move the runs of dead
workers to live ones.

Open-source DBOS does not move a dead process's pending workflows by itself, so workers
keep a heartbeat table (`llmflow_workers`) in the same database: every worker writes its
row every `heartbeat_s`; a worker that finds another silent for `dead_after_s` claims it
(one UPDATE, so only one worker wins) and asks DBOS to recover its workflows, which puts
the queued ones back on the queue for any worker to take.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient

from ..errors import ConfigError, RunError
from .dbos_api import recover_pending_workflows
from .engine import (
    APP_NAME,
    DurableSettings,
    WorkflowLoader,
    launch,
    process_executor_id,
    shutdown,
)
from .item_workflows import RUN_QUEUE

_workers = sa.Table(
    "llmflow_workers",
    sa.MetaData(),
    sa.Column("executor_id", sa.Text, primary_key=True),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("recovered_by", sa.Text, nullable=True),
    sa.Column("dead_after_s", sa.Float, nullable=True),
)

MIN_BEATS_TO_DEATH = 3
"""`dead_after_s` must span this many heartbeats: a worker that misses one beat (a busy
machine, a slow database) is late, not dead. Declaring a live worker dead would let a
second worker run its items at the same time."""


@dataclass(kw_only=True)
class WorkerOptions:
    concurrency: int = 4
    """Items this worker runs at once."""
    global_concurrency: int | None = None
    """Items running at once on all workers."""
    rate: int | None = None
    """Items started per `period_s`, on all workers."""
    period_s: float = 60.0
    heartbeat_s: float = 5.0
    dead_after_s: float = 30.0


class Heartbeat:
    """This worker's row in `llmflow_workers`, and the recovery of silent workers."""

    def __init__(self, url: str, executor_id: str, options: WorkerOptions) -> None:
        self.engine = sa.create_engine(url)
        self.executor_id = executor_id
        self.options = options
        with self.engine.begin() as db:
            # Workers starting together would race to create the table (PostgreSQL fails
            # one of two concurrent CREATE TABLEs): one at a time, under a lock.
            db.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('llmflow_workers'))"))
            _workers.metadata.create_all(db, checkfirst=True)
            # Tables made before the column existed.
            db.execute(
                sa.text("ALTER TABLE llmflow_workers ADD COLUMN IF NOT EXISTS dead_after_s FLOAT")
            )

    def beat(self) -> None:
        """Write this worker's row; fail if another worker declared it dead meanwhile (its
        items are back on the queue: running them on here too would make calls twice)."""
        now = time.time()
        with self.engine.begin() as db:
            mine = _workers.c.executor_id == self.executor_id
            updated = db.execute(
                _workers.update()
                .where(mine, _workers.c.recovered_by.is_(None))
                .values(last_seen=now, dead_after_s=self.options.dead_after_s)
            ).rowcount
            if updated:
                return
            taken_by = db.execute(sa.select(_workers.c.recovered_by).where(mine)).scalar()
            if taken_by is not None:
                raise RunError(
                    f"worker {self.executor_id} was silent longer than --dead-after-s and "
                    f"{taken_by} took its runs over: stopping (raise --dead-after-s if this "
                    "machine is often this busy)"
                )
            db.execute(
                _workers.insert().values(
                    executor_id=self.executor_id, last_seen=now,
                    dead_after_s=self.options.dead_after_s,
                )
            )  # fmt: skip

    def claim_dead(self) -> list[str]:
        """Executors silent for `dead_after_s` (this worker's, or the longer one the silent
        worker asked for) that this worker now owns the recovery of."""
        now = time.time()
        patience = sa.func.greatest(
            sa.func.coalesce(_workers.c.dead_after_s, 0.0), self.options.dead_after_s
        )
        claimed = []
        with self.engine.begin() as db:
            silent = db.execute(
                sa.select(_workers.c.executor_id).where(
                    _workers.c.last_seen < now - patience, _workers.c.recovered_by.is_(None)
                )
            ).scalars()
            for executor_id in list(silent):
                won = db.execute(
                    _workers.update()
                    .where(_workers.c.executor_id == executor_id, _workers.c.recovered_by.is_(None))
                    .values(recovered_by=self.executor_id)
                ).rowcount
                if won:
                    claimed.append(executor_id)
        return claimed

    def leave(self) -> None:
        with self.engine.begin() as db:
            db.execute(_workers.delete().where(_workers.c.executor_id == self.executor_id))
        self.engine.dispose()


def _queue_limits(options: WorkerOptions) -> dict[str, Any]:
    limiter = {"limit": options.rate, "period": options.period_s} if options.rate else None
    return {
        "worker_concurrency": options.concurrency,
        "global_concurrency": options.global_concurrency,
        "limiter": limiter,
        "polling_interval_sec": 0.2,
        "on_conflict": "always_update",
    }


def _register_queue_before_launch(settings: DurableSettings, limits: dict[str, Any]) -> None:
    """Write the run queue's limits with a DBOS client (no queue polling) when the DBOS
    tables exist. Best effort: on a database DBOS is still setting up (another process
    migrating it) this is skipped, and safely so - a queue there can only be one that
    `llmflow run` just made, paused until a worker sets its limits."""
    try:
        engine = sa.create_engine(settings.system_database_url)
        try:
            with engine.connect() as db:
                ready = sa.inspect(db).has_table("queues", schema="dbos")
        finally:
            engine.dispose()
        if not ready:
            return
        client = DBOSClient(
            system_database_url=settings.system_database_url, application_name=APP_NAME
        )
        try:
            client.register_queue(RUN_QUEUE, **limits)
        finally:
            client.destroy()
    except sa.exc.SQLAlchemyError as e:  # launch() reports an unreachable database clearly
        DBOS.logger.debug(f"queue limits not written before launch: {e}")


def serve(
    options: WorkerOptions,
    stop: threading.Event | None = None,
    *,
    load_workflow: WorkflowLoader | None = None,
) -> None:
    """Run a worker until `stop` is set (or SIGTERM/SIGINT)."""
    settings = DurableSettings()
    if not settings.shared:
        raise ConfigError(
            "a worker takes runs from a shared database: set LLMFLOW_DATABASE_URL to a "
            "postgresql:// URL (the same for `llmflow run` and every worker)"
        )
    if options.dead_after_s < MIN_BEATS_TO_DEATH * options.heartbeat_s:
        raise ConfigError(
            f"--dead-after-s {options.dead_after_s:g} is too short for --heartbeat-s "
            f"{options.heartbeat_s:g}: a live worker would be declared dead after one late "
            f"beat; use at least {MIN_BEATS_TO_DEATH} heartbeats "
            f"(--dead-after-s {MIN_BEATS_TO_DEATH * options.heartbeat_s:g})"
        )
    stop = stop or threading.Event()
    executor_id = process_executor_id("worker")
    limits = _queue_limits(options)
    # DBOS starts taking items from the queue as configured in its row as soon as it is
    # launched: write this worker's limits first where the row can exist already (else the
    # first poll runs under another process's limits, e.g. all items at once), and again
    # after the launch (a fresh database has no DBOS tables before it).
    _register_queue_before_launch(settings, limits)
    launch(settings, executor_id=executor_id, listen_queues=[RUN_QUEUE],
           load_workflow=load_workflow)  # fmt: skip
    DBOS.register_queue(RUN_QUEUE, **limits)
    heart = Heartbeat(settings.system_database_url, executor_id, options)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop.is_set():
            heart.beat()
            for dead in heart.claim_dead():
                DBOS.logger.warning(f"worker {dead} stopped heart-beating: recovering its runs")
                recover_pending_workflows([dead])
            stop.wait(options.heartbeat_s)
    finally:
        heart.leave()
        shutdown()
