"""Side effects and approvals of durable runs.

A side effect (an `action` step, a tool declared `side_effect=True`, a workflow file's
action) is checkpointed - in the run store with the item's model calls (`ledger.py`), or as a
DBOS step in runs that keep their calls there: once it completed, a resumed run gets its
recorded result and
does not run it again; the one cut off mid-way by a crash runs again with the same
idempotency key, for the service it calls to recognise. `DurableEffects` is what durable runs
install in their context (`RunContext.effects`), so that steps reach these without importing
the durable engine.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..steps.context import RunContext
from ..steps.effects import Decision, Effects, Outcome
from ..steps.idempotency import current_idempotency_key as current_idempotency_key
from ..steps.idempotency import idempotency_key as idempotency_key
from .ledger import current_item

T = TypeVar("T")


def in_durable_run() -> bool:
    """Whether this code runs in a DBOS workflow (and not inside one of its steps)."""
    if "dbos" not in sys.modules:  # DBOS is imported only where a run needs it
        return False
    from .dbos_api import in_workflow

    return in_workflow()


def _dbos_workflow_id() -> str | None:
    """The DBOS workflow this code runs in (or in a step of), if any."""
    if "dbos" not in sys.modules:
        return None
    from dbos import DBOS

    from .dbos_api import has_context

    return DBOS.workflow_id if has_context() else None


def effect_key(run_id: str | None, item_id: str | None, path: str) -> str:
    """The key of the effect at `path`: durable runs use the workflow id (stable across
    resumes); others the run and item ids (unique to that execution)."""
    workflow_id = _dbos_workflow_id()
    item = current_item()
    if not workflow_id and item is not None:  # an item that runs without a DBOS workflow
        workflow_id = item.workflow_id
    if workflow_id:
        return f"{workflow_id}/{path}"
    if not run_id and not item_id:  # `run(step, input)`: no ids, yet each run is another
        run_id = f"local-{uuid.uuid4().hex}"
    return "/".join(p for p in (run_id, item_id, path) if p)


async def run_effect(
    fn: Callable[[], Awaitable[T]], *, run_id: str | None, item_id: str | None, path: str
) -> T:
    """Run a side effect once: checkpointed in a durable run (in the run store, or as a DBOS
    step: not repeated on resume once it completed), with its idempotency key set for the one
    that was cut off mid-way."""
    key = effect_key(run_id, item_id, path)

    async def effect() -> T:
        with idempotency_key(key):
            return await fn()

    item = current_item()
    if item is not None:  # checkpointed in the run store (`ledger.py`)
        return await item.effect(path, effect)
    if in_durable_run():
        from dbos import DBOS

        return await DBOS.run_step_async({"name": f"effect:{path}"}, effect)
    return await effect()


class DurableEffects(Effects):
    """Effects checkpointed as DBOS steps; approvals that wait durably for a person."""

    durable = True

    async def run(self, fn: Callable[[], Awaitable[T]], ctx: RunContext) -> T:
        return await run_effect(fn, run_id=ctx.run_id, item_id=ctx.item_id, path=ctx.path)

    async def approval(
        self,
        ctx: RunContext,
        prompt: str,
        *,
        timeout_s: float | None = None,
        default: Outcome = "reject",
        details: dict[str, Any] | None = None,
    ) -> Decision:
        from .approval import request_approval

        return await request_approval(
            ctx, prompt, timeout_s=timeout_s, default=default, details=details
        )


DURABLE = DurableEffects()
