"""The hook that records runs into the run store: logging is a hook, not an engine case."""

from __future__ import annotations

import asyncio
from typing import Any

from ..models.gateway import ModelCall
from ..steps.base import Step
from ..store.sqlite import RunStore
from .context import RunContext, RunHooks


class StoreRecorder(RunHooks):
    """Records the items, steps and model calls of runs into a `RunStore`.

    An item's rows are committed together when the item ends. In a durable run
    (`durable=True`) model calls are committed as they start and end, inside the checkpointed
    step: a call that completed before a crash is never replayed through the recorder, and
    one in flight at the crash stays on record (as `interrupted`), so every call the provider
    saw is recorded.
    """

    def __init__(self, store: RunStore, *, durable: bool = False) -> None:
        self.store = store
        self.durable = durable

    def on_item_start(self, ctx: RunContext, *, key: str, **kwargs: Any) -> None:
        if ctx.item_id is not None and ctx.run_id is not None:
            self.store.start_item(ctx.item_id, run_id=ctx.run_id, key=key)

    def on_item_end(
        self,
        ctx: RunContext,
        *,
        key: str,
        output: Any,
        error: BaseException | None,
        started_at: float,
        **kwargs: Any,
    ) -> None:
        if ctx.item_id is not None:
            if error is None:
                status = "ok"
            elif isinstance(error, asyncio.CancelledError):
                status = "interrupted"
            else:
                status = "failed"
            self.store.end_item(ctx.item_id, status=status, output=output, error=error)
        self.store.flush()

    def on_step_end(
        self,
        ctx: RunContext,
        *,
        step: Step[Any, Any],
        input: Any,
        output: Any,
        error: BaseException | None,
        started_at: float,
        latency_s: float,
        **kwargs: Any,
    ) -> None:
        self.store.add_step(
            run_id=ctx.run_id,
            item_id=ctx.item_id,
            path=ctx.path,
            kind=step.kind,
            input=input,
            output=output,
            error=error,
            started_at=started_at,
            latency_s=latency_s,
        )

    def on_model_call_start(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        if self.durable:
            self.store.add_model_call(
                call, run_id=ctx.run_id, item_id=ctx.item_id, step_path=ctx.path, status="running"
            )
            self.store.flush()

    def on_model_call(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        self.store.add_model_call(call, run_id=ctx.run_id, item_id=ctx.item_id, step_path=ctx.path)
        if self.durable:
            self.store.flush()
