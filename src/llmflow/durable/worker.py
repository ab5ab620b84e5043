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

import sqlalchemy as sa
from dbos import DBOS

from ..errors import ConfigError
from .batch import RUN_QUEUE
from .engine import DurableSettings, launch, process_executor_id, shutdown

_workers = sa.Table(
    "llmflow_workers",
    sa.MetaData(),
    sa.Column("executor_id", sa.Text, primary_key=True),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("recovered_by", sa.Text, nullable=True),
)


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
        _workers.metadata.create_all(self.engine, checkfirst=True)

    def beat(self) -> None:
        now = time.time()
        with self.engine.begin() as db:
            updated = db.execute(
                _workers.update()
                .where(_workers.c.executor_id == self.executor_id)
                .values(last_seen=now)
            ).rowcount
            if not updated:
                db.execute(_workers.insert().values(executor_id=self.executor_id, last_seen=now))

    def claim_dead(self) -> list[str]:
        """Executors silent for `dead_after_s` that this worker now owns the recovery of."""
        cutoff = time.time() - self.options.dead_after_s
        claimed = []
        with self.engine.begin() as db:
            silent = db.execute(
                sa.select(_workers.c.executor_id).where(
                    _workers.c.last_seen < cutoff, _workers.c.recovered_by.is_(None)
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


def serve(options: WorkerOptions, stop: threading.Event | None = None) -> None:
    """Run a worker until `stop` is set (or SIGTERM/SIGINT)."""
    settings = DurableSettings()
    if not settings.shared:
        raise ConfigError(
            "a worker takes runs from a shared database: set LLMFLOW_DATABASE_URL to a "
            "postgresql:// URL (the same for `llmflow run` and every worker)"
        )
    stop = stop or threading.Event()
    executor_id = process_executor_id("worker")
    launch(settings, executor_id=executor_id, listen_queues=[RUN_QUEUE])
    limiter = {"limit": options.rate, "period": options.period_s} if options.rate else None
    DBOS.register_queue(
        RUN_QUEUE,
        worker_concurrency=options.concurrency,
        global_concurrency=options.global_concurrency,
        limiter=limiter,  # type: ignore[arg-type]
        polling_interval_sec=0.2,
        on_conflict="always_update",
    )
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
                DBOS._recover_pending_workflows([dead])
            stop.wait(options.heartbeat_s)
    finally:
        heart.leave()
        shutdown()
