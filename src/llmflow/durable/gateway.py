"""Model calls as DBOS steps: the gateway of durable runs.

Inside a durable run (a DBOS workflow), every model call is a DBOS step: its output is
checkpointed when it completes, and when the run resumes the recorded output is returned
instead of calling the model again. A step named after its path (`model:email-triage/classify`)
is replayed only at the same place: a workflow whose steps come in another order fails with
a clear error instead of getting another step's output. Outside a durable run the gateway
is the plain one. (Side effects and approvals: `effects.py`.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dbos import DBOS

from ..ids import new_id
from ..models.client import ModelRequest, ModelResponse
from ..models.gateway import CallObserver, Gateway, ModelCall
from .effects import in_durable_run


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
        validate: Callable[[ModelResponse], object] | None = None,
    ) -> ModelResponse:
        if not in_durable_run():
            return await super().complete(
                request, model=model, observer=observer, use_cache=use_cache, call_id=call_id,
                validate=validate,
            )  # fmt: skip
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
                call_id=call_id, validate=validate,
            )  # fmt: skip

        response: Any = await DBOS.run_step_async({"name": f"model:{path}"}, call)
        return response  # type: ignore[no-any-return]
