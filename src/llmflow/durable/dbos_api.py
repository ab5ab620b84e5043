"""The few DBOS internals llmflow needs, in one place.

DBOS's public API covers everything else. What it lacks: telling whether code runs inside a
workflow (and not inside one of its steps), the error a replay raises when the recorded steps
do not match the code, the serializer interface, and recovering the workflows of a named dead
executor. `tests/test_dbos_api.py` checks each of these against the installed DBOS, so an
upgrade that moves one fails there, not in a user's run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from dbos import DBOS
from dbos._context import get_local_dbos_context
from dbos._error import DBOSUnexpectedStepError as UnexpectedStepError
from dbos._serialization import Serializer

if TYPE_CHECKING:
    from .serialization import JsonSerializer

__all__ = [
    "Serializer",
    "UnexpectedStepError",
    "as_dbos_serializer",
    "in_workflow",
    "recover_pending_workflows",
]


def in_workflow() -> bool:
    """Whether this code runs in a DBOS workflow (and not inside one of its steps)."""
    ctx = get_local_dbos_context()
    return ctx is not None and ctx.is_workflow()


def has_context() -> bool:
    """Whether this code runs under any DBOS context (a workflow or one of its steps)."""
    return get_local_dbos_context() is not None


def recover_pending_workflows(executor_ids: list[str]) -> list[Any]:
    """Take over the pending workflows of executors that died; returns their handles."""
    handles: list[Any] = DBOS._recover_pending_workflows(executor_ids)
    return handles


def as_dbos_serializer(serializer: JsonSerializer) -> Serializer:
    """llmflow's serializer as DBOS's configuration asks for one: it has DBOS's `Serializer`
    methods, and is registered as one (it is defined without DBOS, which runs without
    approvals never import)."""
    Serializer.register(type(serializer))
    return cast(Serializer, serializer)
