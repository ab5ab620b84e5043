"""Run a step on one input, or a workflow on a batch of items with bounded concurrency.

A failing item is recorded with its reason and the batch goes on; nothing already done is
lost. The run's record (start, items, end) goes to the hooks and, when a store is given, to
the run store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import BudgetExceededError, InputError, RunError
from ..ids import new_id
from ..models.budget import Budget
from ..models.gateway import Gateway
from ..steps.base import Step
from ..steps.context import RunContext, RunHooks
from ..steps.effects import DIRECT, Effects
from ..store.sqlite import RunStore
from .admission import Admission, resumed
from .batch_types import (
    BatchResult,
    Finish,
    Item,
    ItemExecutor,
    ItemResult,
    Loader,
    RunStatus,
    Workflow,
)
from .recording import StoreRecorder
from .telemetry import telemetry_hooks


def item_id(run_id: str, index: int) -> str:
    """The id of item `index` of run `run_id`: stable, so that an item run again after a
    crash updates its own record instead of adding a second one."""
    return f"{run_id}.{index}"


@dataclass(kw_only=True)
class BatchRun:
    """A batch as it runs: the one place the run and item lifecycle is written.

    `run_batch` drives it in this process; the durable engine drives the same object, only
    executing each item as a checkpointed workflow (`durable.batch`).
    """

    workflow: Workflow
    """What runs on each item."""
    items: list[Item]
    """The batch, in input order."""
    base: RunContext
    """The run's context: each item runs in `base.for_item(...)`."""
    store: RunStore | None = None
    """Where the run is recorded (its recorder is among `base.hooks`)."""
    item_budget: Callable[[], Budget] | None = None
    """Makes each item's own budget, whose crossing fails that item only."""
    on_item_done: Callable[[ItemResult], None] | None = None
    """Called with each item's result as it ends (progress bars)."""
    stop: RunError | None = None
    """The run's budget is spent: no further item starts."""
    admission: Admission | None = None
    """Admits items against the run's budget, so that it is spent on whole items (set by
    `drive` when the run has a budget)."""
    not_started: int = 0
    """Items left unstarted because the budget could not hold them."""

    @property
    def run_id(self) -> str:
        assert self.base.run_id is not None
        return self.base.run_id

    @property
    def run_budget(self) -> Budget | None:
        """The run's own budget (money, tokens, requests), if it has one."""
        return next((b for b in self.base.budgets if b.scope == "run"), None)

    async def run_item(self, index: int, item: Item) -> ItemResult:
        """The item lifecycle: its hooks, its step on its input, its error kept, never raised
        (cancellation excepted, recorded as interrupted and re-raised)."""
        budgets = [self.item_budget()] if self.item_budget is not None else []
        if self.admission is not None:
            budgets.append(self.admission.meter(index))
        ctx = self.base.for_item(item_id(self.run_id, index), *budgets)
        started_at = time.time()
        for hook in ctx.hooks:
            hook.on_item_start(ctx, key=item.key)
        result = ItemResult(key=item.key)
        try:
            _check_size(item, self.base.gateway.settings.max_item_mb)
            result.output = await self.workflow.step(item.value, ctx)
        except Exception as e:
            result.error = e
        except BaseException as e:
            result.error = e
            raise
        finally:
            for hook in ctx.hooks:
                hook.on_item_end(
                    ctx, key=item.key, output=result.output, error=result.error,
                    started_at=started_at,
                )  # fmt: skip
        self.note(result.error)
        return result

    def note(self, error: BaseException | None) -> None:
        """Stop the run when an item crossed the run's budget (not just its own)."""
        if stops_run(error):
            assert isinstance(error, RunError)
            self.stop = self.stop or error

    def start(
        self, *, model: str | None, source: str | None, resuming: bool = False,
        commit: bool = True,
    ) -> None:  # fmt: skip
        """Record the run's start (or, resuming, that it runs again, its budget charged
        with what it spent before); `commit=False`: a fresh run's start row waits for the
        store's next commit."""
        for hook in self.base.hooks:
            hook.on_run_start(
                self.base, workflow=self.workflow.name, items=len(self.items), resuming=resuming
            )
        if self.store is None:
            return
        out_dir = str(self.base.out_dir) if self.base.out_dir else None
        if resuming:
            self.store.resume_run(self.run_id)
            budget = self.run_budget
            if budget is not None:
                for call in self.store.call_costs(self.run_id):
                    if not call["cached"]:
                        budget.requests += 1
                        budget.spent_tokens += call["input_tokens"] + call["output_tokens"]
                        budget.spent_cost += Decimal(call["cost"] or 0)
                ended = {r["id"] for r in self.store.rows("items", self.run_id)
                         if r["status"] in ("ok", "failed")}  # fmt: skip
                replays = {i for i in range(len(self.items)) if item_id(self.run_id, i) in ended}
                calls = self.store.rows("model_calls", self.run_id)
                self.admission = resumed(budget, calls, replays, self.base.gateway)
        else:
            self.store.start_run(
                self.run_id, workflow=self.workflow.name, model=model, source=source,
                out_dir=out_dir, items_total=len(self.items), commit=commit,
            )  # fmt: skip

    async def drive(
        self, execute: ItemExecutor, *, concurrency: int, admits_by_item: bool = True
    ) -> BatchResult:
        """Execute every item, at most `concurrency` at once, in input order; then the
        workflow's finish step and the run's end. Cancellation raises `RunInterrupted`.

        With a run budget, items are admitted by what an item uses (`admission.py`), so the
        budget is spent on whole items; `admits_by_item=False` when items run where their use
        cannot be measured here (workers on other machines)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        slots: list[ItemResult | None] = [None] * len(self.items)
        queue = iter(enumerate(self.items))
        budget = self.run_budget
        if budget is not None and self.admission is None and admits_by_item:
            self.admission = Admission(budget)
        admission = self.admission if admits_by_item else None

        async def worker() -> None:
            # `concurrency` workers pull items in order: a batch of 100,000 items holds
            # `concurrency` tasks, not 100,000.
            for index, item in queue:
                if self.stop is not None:  # the run's budget is spent: start nothing more
                    return
                if admission is not None and not await admission.admit(index):
                    self.not_started += 1  # and the next, but for items that only replay
                    continue
                try:
                    result = await execute(index, item)
                finally:
                    if admission is not None:
                        await admission.done(index)
                slots[index] = result
                if self.on_item_done is not None and not skipped(result):
                    self.on_item_done(result)

        interrupted = False
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(concurrency, len(self.items))):
                    group.create_task(worker())
        except asyncio.CancelledError:
            interrupted = True
        if admission is not None and self.not_started and self.stop is None:
            self.stop = admission.refusal(self.not_started)
        ran = [r for r in slots if r is not None]
        results = [r for r in ran if not skipped(r)]
        if self.stop is None:  # items that ran in another process may have been stopped there
            stop = next((r.error for r in ran if stops_run(r.error)), None)
            self.stop = stop if isinstance(stop, RunError) else None
        stopped = self.stop is not None and not interrupted
        batch = BatchResult(
            run_id=self.run_id,
            workflow=self.workflow.name,
            results=results,
            status="stopped" if stopped else _status(results, interrupted),
            out_dir=self.base.out_dir,
            error=str(self.stop) if self.stop is not None else None,
            not_started=self.not_started,
        )
        error: str | None = batch.error
        try:
            if self.workflow.finish is not None and not interrupted:
                batch.artifacts = self.workflow.finish(batch, self.base.child(self.workflow.name))
        except Exception as e:
            batch.status, error = "failed", f"finish: {type(e).__name__}: {e}"
            raise
        finally:
            if self.store is not None:
                self.store.end_run(
                    self.run_id, status=batch.status, items_ok=sum(r.ok for r in results),
                    items_failed=sum(not r.ok for r in results), error=error,
                )  # fmt: skip
            for hook in self.base.hooks:
                hook.on_run_end(
                    self.base, workflow=self.workflow.name, status=batch.status,
                    items_ok=sum(r.ok for r in results),
                    items_failed=sum(not r.ok for r in results), error=error,
                )  # fmt: skip
        if interrupted:
            raise RunInterrupted(batch)
        return batch


def stops_run(error: BaseException | None) -> bool:
    """Whether an item's error stops the whole run: the run's budget is spent, or its
    provider is down (errors whose `scope` is `run`), not the item's own budget."""
    return isinstance(error, RunError) and getattr(error, "scope", None) == "run"


class Skipped(BudgetExceededError):
    """An item that never started because the run's budget was spent (left out of results)."""


def skipped(result: ItemResult) -> bool:
    return isinstance(result.error, Skipped)


async def run_batch(
    workflow: Workflow,
    items: Sequence[Item],
    *,
    gateway: Gateway,
    model: str | None = None,
    concurrency: int = 4,
    hooks: Sequence[RunHooks] = (),
    store: RunStore | None = None,
    source: str | None = None,
    out_dir: Path | None = None,
    run_id: str | None = None,
    budget: Budget | None = None,
    item_budget: Callable[[], Budget] | None = None,
    on_item_done: Callable[[ItemResult], None] | None = None,
    effects: Effects | None = None,
) -> BatchResult:
    """Run `workflow.step` on every item, at most `concurrency` at once.

    Items fail independently: a failed item keeps its error and the batch goes on. With a
    `store`, the run, its items, steps and model calls are recorded there. Cancellation
    (Ctrl-C) raises `RunInterrupted`, which carries the items that finished. `budget` limits
    the whole batch: when a call would cross it, no further item starts (those in flight
    finish within their reservations) and the status is `stopped`; `item_budget` makes a
    fresh budget for each item, whose crossing fails that item only. `effects` carries out
    side effects and approvals (default: directly, approvals refused; durable runs use
    `llmflow.durable`; tests may decide approvals in code).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    all_hooks = (*hooks, *telemetry_hooks())
    if store is not None:
        all_hooks = (StoreRecorder(store), *all_hooks)
    batch = BatchRun(
        workflow=workflow,
        items=list(items),
        base=RunContext(
            gateway=gateway,
            run_id=run_id or new_id(),
            model=model,
            hooks=all_hooks,
            out_dir=out_dir,
            budgets=(budget,) if budget is not None else (),
            effects=effects or DIRECT,
        ),
        store=store,
        item_budget=item_budget,
        on_item_done=on_item_done,
    )
    batch.start(model=model or gateway.settings.model, source=source)
    return await batch.drive(batch.run_item, concurrency=concurrency)


def _check_size(item: Item, limit_mb: float) -> None:
    """Fail an item whose text is over the limit (counted until the limit is passed)."""
    limit = int(limit_mb * 1_000_000)
    total, stack, seen = 0, [item.value], 0
    while stack and total <= limit and seen < 100_000:
        value = stack.pop()
        seen += 1
        if isinstance(value, str | bytes):
            total += len(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple | set):
            stack.extend(value)
        elif hasattr(value, "__dict__"):  # pydantic models, dataclasses, plain objects
            stack.extend(vars(value).values())
    if total > limit:
        raise InputError(
            f"the item is over {limit_mb:g} MB of text: split it, or raise LLMFLOW_MAX_ITEM_MB",
            source=item.key,
        )


def _status(results: list[ItemResult], interrupted: bool) -> RunStatus:
    failed = sum(not r.ok for r in results)
    if interrupted:
        return "interrupted"
    if failed == 0:
        return "ok"
    return "failed" if failed == len(results) else "partial"


class RunInterrupted(asyncio.CancelledError):
    """A batch was cancelled (e.g. Ctrl-C); `batch` holds the items that finished."""

    def __init__(self, batch: BatchResult) -> None:
        super().__init__("the run was interrupted")
        self.batch = batch


async def run(
    step: Step[Any, Any],
    input: Any,
    *,
    gateway: Gateway | None = None,
    model: str | None = None,
    hooks: Sequence[RunHooks] = (),
) -> Any:
    """Run one step on one input and return its output (errors propagate)."""
    ctx = RunContext(gateway=gateway or Gateway(), model=model, hooks=(*hooks, *telemetry_hooks()))
    return await step(input, ctx)


__all__ = [
    "BatchResult",
    "BatchRun",
    "Finish",
    "Item",
    "ItemExecutor",
    "ItemResult",
    "Loader",
    "RunInterrupted",
    "RunStatus",
    "Skipped",
    "Workflow",
    "item_id",
    "run",
    "run_batch",
]
