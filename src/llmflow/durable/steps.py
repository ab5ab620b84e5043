"""Model calls and side effects as DBOS steps, and the idempotency key effects receive.

Inside a durable run (a DBOS workflow), every model call and every side-effecting step is a
DBOS step: its output is checkpointed when it completes, and when the run resumes the
recorded output is returned instead of running it again. A step named after its path
(`model:email-triage/classify`) is replayed only at the same place: a workflow whose steps
come in another order fails with a clear error instead of getting another step's output.

Outside a durable run the same code runs directly, so steps never need two versions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dbos import DBOS

from ..ids import new_id
from ..models.client import ModelRequest, ModelResponse
from ..models.gateway import CallObserver, Gateway, ModelCall
from ..runtime.idempotency import current_idempotency_key as current_idempotency_key
from ..runtime.idempotency import idempotency_key as idempotency_key
from .dbos_api import has_context, in_workflow

T = TypeVar("T")


def in_durable_run() -> bool:
    """Whether this code runs in a durable workflow (and not inside one of its steps)."""
    return in_workflow()


def effect_key(run_id: str | None, item_id: str | None, path: str) -> str:
    """The key of the effect at `path`: durable runs use the workflow id (stable across
    resumes); others the run and item ids (unique to that execution)."""
    workflow_id = DBOS.workflow_id if has_context() else None
    if workflow_id:
        return f"{workflow_id}/{path}"
    if not run_id and not item_id:  # `run(step, input)`: no ids, yet each run is another
        run_id = f"local-{uuid.uuid4().hex}"
    return "/".join(p for p in (run_id, item_id, path) if p)


async def run_effect(
    fn: Callable[[], Awaitable[T]], *, run_id: str | None, item_id: str | None, path: str
) -> T:
    """Run a side effect once: as a DBOS step in a durable run (not repeated on resume once
    it completed), with its idempotency key set for the one that was cut off mid-way."""
    key = effect_key(run_id, item_id, path)

    async def effect() -> T:
        with idempotency_key(key):
            return await fn()

    if in_durable_run():
        return await DBOS.run_step_async({"name": f"effect:{path}"}, effect)
    return await effect()


class DurableGateway(Gateway):
    """A gateway whose model calls are DBOS steps inside durable runs: a call completed
    before a crash is answered from its checkpoint on resume, so it is neither repeated nor
    paid twice; the call in flight at the crash runs again. This does not depend on the
    response cache: sampled calls and `--no-cache` runs resume the same way."""

    @classmethod
    def adopt(cls, gateway: Gateway) -> DurableGateway:
        """A durable gateway with `gateway`'s settings, limits, cache and registered clients."""
        if isinstance(gateway, DurableGateway):
            return gateway
        return gateway.derive(cls)

    async def complete(
        self,
        request: ModelRequest,
        *,
        model: str | None = None,
        observer: CallObserver | None = None,
        use_cache: bool = True,
        call_id: str | None = None,
    ) -> ModelResponse:
        if not in_durable_run():
            return await super().complete(
                request, model=model, observer=observer, use_cache=use_cache, call_id=call_id
            )
        path = getattr(observer, "path", "") or "call"

        async def call() -> ModelResponse:
            # Inside the checkpointed step: the call is on record before it is sent, so a
            # crash mid-call leaves a trace of a request the provider may have billed.
            call_id = new_id()
            start = getattr(observer, "on_model_call_start", None)
            if start is not None:
                name = model or self.settings.model
                client, _ = self.resolve(name)
                start(ModelCall(id=call_id, model=name, provider=client.provider,
                                request=request, response=None, started_at=time.time(),
                                latency_s=0.0, attempts=0))  # fmt: skip
            return await Gateway.complete(
                self, request, model=model, observer=observer, use_cache=use_cache,
                call_id=call_id,
            )  # fmt: skip

        response: Any = await DBOS.run_step_async({"name": f"model:{path}"}, call)
        return response  # type: ignore[no-any-return]
