"""Model calls as DBOS steps: the gateway of durable runs.

Inside a durable run (a DBOS workflow), every model call is a DBOS step: its output is
checkpointed when it completes, and when the run resumes the recorded output is returned
instead of calling the model again. A step named after its path (`model:email-triage/classify`)
is replayed only at the same place: a workflow whose steps come in another order fails with
a clear error instead of getting another step's output. Outside a durable run the gateway
is the plain one. (Side effects and approvals: `effects.py`.)

Runs on a local run store keep these checkpoints in the run store instead, with the calls'
own records (`ledger.py`): the same replay, without DBOS's two transactions per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..ids import new_id
from ..models.client import ModelRequest, ModelResponse
from ..models.gateway import CallObserver, Gateway, ModelCall
from .effects import in_durable_run
from .ledger import ItemCalls, current_item


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
        item = current_item()
        path = getattr(observer, "path", "") or "call"
        if item is not None:
            return await self._ledger_call(
                item, path, request, model=model, observer=observer, use_cache=use_cache,
                validate=validate,
            )  # fmt: skip
        if not in_durable_run():
            return await super().complete(
                request, model=model, observer=observer, use_cache=use_cache, call_id=call_id,
                validate=validate,
            )  # fmt: skip

        async def call() -> ModelResponse:
            # Inside the checkpointed step: the call is on record before it is sent, so a
            # crash mid-call leaves a trace of a request the provider may have billed.
            call_id = new_id()
            self._announce(call_id, request, model, observer)
            return await Gateway.complete(
                self, request, model=model, observer=observer, use_cache=use_cache,
                call_id=call_id, validate=validate,
            )  # fmt: skip

        from dbos import DBOS

        response: Any = await DBOS.run_step_async({"name": f"model:{path}"}, call)
        return response  # type: ignore[no-any-return]

    async def _ledger_call(
        self,
        item: ItemCalls,
        path: str,
        request: ModelRequest,
        *,
        model: str | None,
        observer: CallObserver | None,
        use_cache: bool,
        validate: Callable[[ModelResponse], object] | None,
    ) -> ModelResponse:
        """A call checkpointed in the run store (`ledger.py`): answered from its checkpoint
        when the item completed it before; else on record before it is sent, and its output
        checkpointed with its end record before it is used."""
        key = item.key(path)
        recorded = item.replay(key)
        if recorded is not None:
            return recorded  # type: ignore[no-any-return]
        call_id = new_id()
        if self._announce(call_id, request, model, observer):
            await item.ledger.commit()
        response = await Gateway.complete(
            self, request, model=model, observer=observer, use_cache=use_cache, call_id=call_id,
            validate=validate,
        )  # fmt: skip
        item.record(key, response)
        await item.ledger.commit()
        return response

    def _announce(
        self,
        call_id: str,
        request: ModelRequest,
        model: str | None,
        observer: CallObserver | None,
    ) -> bool:
        """Tell the observer a call starts (the recorder queues its record): whether it has."""
        start = getattr(observer, "on_model_call_start", None)
        if start is None:
            return False
        name = model or self.settings.model
        client, _ = self.resolve(name)
        call = ModelCall(
            id=call_id, model=name, provider=client.provider, request=request, response=None,
            started_at=time.time(), latency_s=0.0, attempts=0,
        )  # fmt: skip
        start(call)
        return True
