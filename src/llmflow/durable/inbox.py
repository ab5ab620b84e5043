"""The approvals inbox: what durable runs wait for, and the decisions that let them go on.

`llmflow approvals list`, `llmflow approve|reject` and the viewer's approvals page (`llmflow
ui`) all read and answer through these functions, so a decision from the browser is exactly
one from the command line: a DBOS message to the waiting item workflow, which goes on in its
process (or on `llmflow resume`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .approval import EVENT, decision_message, topic


@dataclass(frozen=True, slots=True)
class Pending:
    """One approval a durable run waits for."""

    workflow_id: str
    """The item workflow: `<run id>/<item index>`."""
    path: str
    """The step path of the approval (an approve step, or a tool call that needs one)."""
    request: dict[str, Any]
    """What the run asked: prompt, details, requested_at, timeout_s, default."""

    @property
    def run_id(self) -> str:
        return self.workflow_id.rsplit("/", 1)[0]

    @property
    def item_index(self) -> int:
        return int(self.workflow_id.rsplit("/", 1)[1])


def open_client() -> Any:
    """A DBOS client on the durable database, or None when no durable run ever ran here."""
    from dbos import DBOSClient

    from .dbos_api import as_dbos_serializer
    from .engine import DurableSettings

    settings = DurableSettings()
    if not settings.database_url and not settings.sqlite_path.exists():
        return None
    try:
        return DBOSClient(
            system_database_url=settings.system_database_url,
            serializer=as_dbos_serializer(settings.serializer()),
        )
    except Exception as e:
        raise ConfigError(f"cannot open the durable database: {e}") from None


def pending_approvals(client: Any, run_id: str | None = None) -> list[Pending]:
    """Every approval still waiting (of one run, or of all), oldest workflow first."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    found = []
    try:
        rows = client.list_workflows(
            status="PENDING", name="llmflow.item", load_input=False, load_output=False,
            workflow_id_prefix=f"{run_id}/" if run_id else None,
        )  # fmt: skip
        for w in rows:
            requests = client.get_event(w.workflow_id, EVENT, timeout_seconds=0) or {}
            for path, request in requests.items():
                if request.get("status") == "waiting":
                    found.append(Pending(w.workflow_id, path, request))
    except (OperationalError, ProgrammingError) as e:
        # A durable database that a first run is creating right now (or that one left
        # half-created) has no tables yet, or not all: nothing can be waiting in it.
        if not _missing_table(e):
            raise ConfigError(f"cannot read the durable database: {e.orig}") from None
    return found


def _missing_table(error: Exception) -> bool:
    text = str(error).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def select(pending: list[Pending], run: str, step: str | None = None) -> Pending:
    """The one approval that `run` (a run id, or `<run>/<item>`) and `step` name; a
    ConfigError when none or several do."""
    if "/" in run:
        pending = [p for p in pending if p.workflow_id == run]
    if step is not None:
        pending = [p for p in pending if p.path == step or p.path.endswith("/" + step)]
    if not pending:
        raise ConfigError(
            f"run {run} waits for no approval: `llmflow approvals list` shows those waiting"
        )
    if len(pending) > 1:
        listed = ", ".join(f"{p.workflow_id} {p.path}" for p in pending)
        raise ConfigError(f"run {run} waits for {len(pending)} approvals ({listed}): name the "
                          "item (<run>/<n>) or --step")  # fmt: skip
    return pending[0]


def decide(
    client: Any,
    run: str,
    *,
    approved: bool,
    comment: str | None = None,
    step: str | None = None,
    by: str | None = None,
) -> Pending:
    """Approve or reject what `run` (or `<run>/<item>`) waits for at `step`; returns the
    approval decided. The run goes on in its process, or when resumed."""
    run_id = run.rsplit("/", 1)[0] if "/" in run else run
    chosen = select(pending_approvals(client, run_id) if client is not None else [], run, step)
    message = decision_message(approved, comment)
    if by is not None:
        message["by"] = by
    # The request stays listed until the run takes its answer (maybe only on resume), so a
    # second decision can come first: keyed by the request, the first one sent is the one the
    # run reads, and a later one is dropped instead of waiting in the queue for whatever asks
    # at this path next.
    key = f"llmflow-decision:{chosen.path}:{chosen.request.get('requested_at')}"
    client.send(chosen.workflow_id, message, topic(chosen.path), idempotency_key=key)
    return chosen
