"""Run a step on one input, or a workflow on a batch of items with bounded concurrency.

A failing item is recorded with its reason and the batch goes on; nothing already done is
lost. The run's record (start, items, end) goes to the hooks and, when a store is given, to
the run store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import BudgetExceededError
from ..ids import new_id
from ..models.budget import Budget
from ..models.gateway import Gateway
from ..steps.base import Step
from ..store.sqlite import RunStore
from .context import RunContext, RunHooks
from .recording import StoreRecorder


@dataclass(slots=True)
class Item:
    """One input of a batch."""

    key: str
    """Its name in the batch (a file name, a message number)."""
    value: Any
    """The input handed to the workflow's step."""


@dataclass(slots=True, kw_only=True)
class ItemResult:
    """What became of one item."""

    key: str
    """The item's key."""
    output: Any = None
    """The step's output, when it succeeded."""
    error: BaseException | None = None
    """Why it failed, when it did."""

    @property
    def ok(self) -> bool:
        return self.error is None


RunStatus = Literal["ok", "partial", "failed", "interrupted", "stopped"]


@dataclass(slots=True, kw_only=True)
class BatchResult:
    """The outcome of a batch run."""

    run_id: str
    """The run's id in the store."""
    workflow: str
    """The workflow's name."""
    results: list[ItemResult]
    """One per item, in input order (only the items that ran, if interrupted)."""
    status: RunStatus = "ok"
    """ok: every item succeeded; partial: some failed; failed: all failed; interrupted (by
    Ctrl-C); stopped (by the run's budget: `error` says which)."""
    error: str | None = None
    """Why the run stopped early, when it did."""
    out_dir: Path | None = None
    """Where the run wrote its files."""
    artifacts: dict[str, Path] = field(default_factory=dict)
    """Files the workflow's finish step wrote (e.g. `digest`)."""

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if not r.ok]


Finish = Callable[[BatchResult, RunContext], dict[str, Path]]
Loader = Callable[[Path], list[Item]]


@dataclass(slots=True, kw_only=True)
class Workflow:
    """A step to run on each item of a batch, how to load the batch, and what to do after."""

    name: str
    """The workflow's name (the root of every step path)."""
    step: Step[Any, Any]
    """What runs on each item."""
    load: Loader | None = None
    """Turns a CLI input (file or folder) into items."""
    finish: Finish | None = None
    """Batch-level actions after every item ran (e.g. a digest); returns the files written."""
    description: str = ""
    """One line for `--help` and listings."""
    columns: Callable[[Any], dict[str, str]] | None = None
    """The columns of an item's output in the CLI's result table."""


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
) -> BatchResult:
    """Run `workflow.step` on every item, at most `concurrency` at once.

    Items fail independently: a failed item keeps its error and the batch goes on. With a
    `store`, the run, its items, steps and model calls are recorded there. Cancellation
    (Ctrl-C) raises `RunInterrupted`, which carries the items that finished. `budget` limits
    the whole batch: when a call would cross it, no further item starts (those in flight
    finish within their reservations) and the status is `stopped`; `item_budget` makes a
    fresh budget for each item, whose crossing fails that item only.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    run_id = run_id or new_id()
    all_hooks = tuple(hooks)
    if store is not None:
        all_hooks = (StoreRecorder(store), *all_hooks)
        store.start_run(
            run_id,
            workflow=workflow.name,
            model=model or gateway.settings.model,
            source=source,
            out_dir=str(out_dir) if out_dir else None,
            items_total=len(items),
        )
    base = RunContext(
        gateway=gateway,
        run_id=run_id,
        model=model,
        hooks=all_hooks,
        out_dir=out_dir,
        budgets=(budget,) if budget is not None else (),
    )
    stop: BudgetExceededError | None = None
    slots: list[ItemResult | None] = [None] * len(items)
    queue = iter(enumerate(items))

    async def worker() -> None:
        # `concurrency` workers pull items in order: a batch of 100,000 items holds
        # `concurrency` tasks, not 100,000.
        for index, item in queue:
            if stop is not None:  # the run's budget is spent: start nothing more
                return
            await one(index, item)

    async def one(index: int, item: Item) -> None:
        nonlocal stop
        ctx = base.for_item(new_id(), *([item_budget()] if item_budget else []))
        started_at = time.time()
        for hook in all_hooks:
            hook.on_item_start(ctx, key=item.key)
        result = ItemResult(key=item.key)
        try:
            result.output = await workflow.step(item.value, ctx)
        except BudgetExceededError as e:
            result.error = e
            if e.scope != "item":
                stop = stop or e
        except Exception as e:
            result.error = e
        except BaseException as e:  # cancelled: recorded as failed, then re-raised
            result.error = e
            raise
        finally:
            for hook in all_hooks:
                hook.on_item_end(
                    ctx,
                    key=item.key,
                    output=result.output,
                    error=result.error,
                    started_at=started_at,
                )
        slots[index] = result
        if on_item_done is not None:
            on_item_done(result)

    interrupted = False
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(items))):
                group.create_task(worker())
    except asyncio.CancelledError:
        interrupted = True
    results = [r for r in slots if r is not None]
    batch = BatchResult(
        run_id=run_id,
        workflow=workflow.name,
        results=results,
        status="stopped" if stop is not None and not interrupted else _status(results, interrupted),
        out_dir=out_dir,
        error=str(stop) if stop is not None else None,
    )
    error: str | None = batch.error
    try:
        if workflow.finish is not None and not interrupted:
            batch.artifacts = workflow.finish(batch, base.child(workflow.name))
    except Exception as e:
        batch.status, error = "failed", f"finish: {type(e).__name__}: {e}"
        raise
    finally:
        if store is not None:
            store.end_run(
                run_id,
                status=batch.status,
                items_ok=sum(r.ok for r in results),
                items_failed=sum(not r.ok for r in results),
                error=error,
            )
    if interrupted:
        raise RunInterrupted(batch)
    return batch


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
    ctx = RunContext(gateway=gateway or Gateway(), model=model, hooks=tuple(hooks))
    return await step(input, ctx)


__all__ = [
    "BatchResult",
    "Item",
    "ItemResult",
    "RunInterrupted",
    "Workflow",
    "run",
    "run_batch",
]
