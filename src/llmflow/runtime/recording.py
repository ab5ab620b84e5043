"""The hook that records runs into the run store: logging is a hook, not an engine case."""

from __future__ import annotations

import asyncio
from typing import Any

from ..models.gateway import ModelCall
from ..patterns.cascade import Cascade, CascadeResult
from ..patterns.chain import Assign
from ..steps.base import Step
from ..steps.context import RunContext, RunHooks
from ..store.base import CallRecord, Store
from ..store.sqlite import to_json


class StoreRecorder(RunHooks):
    """Records the items, steps and model calls of runs into a run store.

    An item's rows are committed together when the item ends. In a durable run
    (`durable=True`) model calls are committed as they start and end, inside the checkpointed
    step: a call that completed before a crash is never replayed through the recorder, and
    one in flight at the crash stays on record (as `interrupted`), so every call the provider
    saw is recorded. With `commits=False` the recorder only queues its rows: the durable
    run's call ledger commits them, with the calls' checkpoints and the items' results
    (`durable.ledger`).
    """

    def __init__(self, store: Store, *, durable: bool = False, commits: bool = True) -> None:
        self.store = store
        self.durable = durable
        self.commits = commits
        self._in_flight: set[str] = set()
        """Calls recorded as they started: their end record leaves the prompt as it is."""

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
        if self.commits:
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
        decided, result = step, output
        if isinstance(step, Assign) and isinstance(output, dict):
            # A chain's step (a workflow file's): the step ran under this path, its output
            # stored in the chain's state.
            decided, result = step.step, output.get(step.field)
        if isinstance(decided, Cascade) and isinstance(result, CascadeResult):
            last = decided.tiers[-1][0]
            self.store.add_decision(
                run_id=ctx.run_id, item_id=ctx.item_id, path=ctx.path, step=decided.name,
                model=getattr(last, "model", None) or ctx.model or ctx.gateway.settings.model,
                tier=result.tier, label=result.label, confidence=result.confidence,
                attempts=[a.model_dump() for a in result.attempts],
                audit_label=result.audit.label if result.audit else None,
                created_at=started_at + latency_s,
            )  # fmt: skip
        if self.durable and step.kind == "approval":  # a run waiting for a person shows it
            self.store.flush()

    def on_model_call_start(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        if self.durable:
            self.store.add_call(
                call_record(call, status="running"),
                run_id=ctx.run_id, item_id=ctx.item_id, step_path=ctx.path,
            )  # fmt: skip
            self._in_flight.add(call.id)
            if self.commits:
                self.store.flush()

    def on_model_call(self, ctx: RunContext, *, call: ModelCall, **kwargs: Any) -> None:
        # A call recorded as it started has its prompt on record: not built, redacted and
        # written again (an agent's prompt is its whole conversation so far).
        started = call.id in self._in_flight
        self._in_flight.discard(call.id)
        self.store.add_call(
            call_record(call, prompt=not started),
            run_id=ctx.run_id, item_id=ctx.item_id, step_path=ctx.path,
        )  # fmt: skip
        if self.durable and self.commits:
            self.store.flush()


def call_record(call: ModelCall, *, status: str | None = None, prompt: bool = True) -> CallRecord:
    """The store's record of a gateway call (`prompt=False`: its prompt left empty, which
    the store reads as "keep the one of the call's earlier record")."""
    response = call.response
    if response is None:
        answer = None
    elif response.tool_calls:
        answer = to_json(response.tool_calls)
    else:
        answer = response.text
    if status is None:
        # The gateway describes a call cut off by cancellation (Ctrl-C, SIGTERM) as "cancelled".
        status = "ok" if call.error is None else "interrupted" if call.error == "cancelled" else (
            "failed"
        )  # fmt: skip
    return CallRecord(
        id=call.id,
        model=call.model,
        provider=call.provider,
        prompt=to_json(call.request) if prompt else "",
        response=answer,
        finish_reason=response.finish_reason if response else None,
        input_tokens=response.usage.input_tokens if response else None,
        output_tokens=response.usage.output_tokens if response else None,
        latency_ms=call.latency_s * 1000,
        attempts=call.attempts,
        status=status,
        error=call.error,
        started_at=call.started_at,
        cost=None if call.cost is None else str(call.cost),
        cached=call.cached,
    )
