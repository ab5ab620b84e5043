"""Durable batch runs: each item of a batch is a DBOS workflow `<run id>/<item index>`.

The driver (`run_durable`) starts the items, at most `concurrency` at once, in input order,
and collects their results. An item's model calls and effects are DBOS steps (see
`steps.py`), so when a process dies mid-batch, `resume` finishes the run: items that
completed return their recorded results without running, the items cut off replay their
completed steps from the checkpoints and run only the step that was in flight, and the
items never started start.

Every item workflow gets the run's `RunSpec` (plain JSON) as its input: it is all a
process needs to rebuild the run - `llmflow resume` in another process, or a worker on
another machine taking items from the shared queue (the inputs must be readable there).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSUnexpectedStepError
from pydantic import BaseModel

from ..errors import BudgetExceededError, ConfigError, RunError
from ..ids import new_id
from ..models.budget import Budget
from ..models.cache import ResponseCache
from ..models.gateway import Gateway
from ..runtime.context import RunContext, RunHooks
from ..runtime.recording import StoreRecorder
from ..runtime.runner import BatchResult, Item, ItemResult, Workflow
from ..settings import Settings
from ..steps.base import Step
from ..store.sqlite import RunStore
from .serialization import RecordedError
from .steps import DurableGateway

RUN_QUEUE = "llmflow-runs"
"""The queue workers take items from (shared mode)."""


class CodeChangedError(ConfigError):
    """A run is resumed with workflow code whose steps differ from the code it started with."""


class RunSpec(BaseModel):
    """What a process needs to rebuild a run: stored with every item workflow, as JSON."""

    run_id: str
    workflow: str
    """The workflow's registered name or `module:attr`."""
    source: str | None
    """The input (file or folder) `workflow.load` reads."""
    items_total: int
    keys_digest: str
    """A digest of the item keys: the inputs must not change under a run."""
    code: str
    """A fingerprint of the workflow's step tree (`fingerprint`)."""
    model: str | None = None
    base_url: str | None = None
    concurrency: int = 4
    out_dir: str | None = None
    cache: bool = True
    max_cost: str | None = None
    max_tokens: int | None = None
    max_requests: int | None = None
    max_cost_per_item: str | None = None
    gateway: str | None = None
    """`module:attr` of a function(Settings) -> Gateway (custom providers, tests)."""

    def budget(self) -> Budget | None:
        if self.max_cost is None and self.max_tokens is None and self.max_requests is None:
            return None
        return Budget(
            max_cost=Decimal(self.max_cost) if self.max_cost else None,
            max_tokens=self.max_tokens,
            max_requests=self.max_requests,
        )

    def item_budget(self) -> Callable[[], Budget] | None:
        if self.max_cost_per_item is None:
            return None
        per_item = Decimal(self.max_cost_per_item)
        return lambda: Budget(
            max_cost=per_item, scope="item", flags={"cost": "--max-cost-per-item"}
        )


def fingerprint(step: Step[Any, Any]) -> str:
    """A digest of the step tree's names, kinds and classes: what a replay depends on.
    (Prompts may change between a crash and a resume; the shape of the run may not.)"""

    def shape(s: Step[Any, Any], role: str) -> list[Any]:
        return [role, s.name, s.kind, type(s).__qualname__, [shape(c, r) for r, c in s.children()]]

    return hashlib.sha256(repr(shape(step, "")).encode()).hexdigest()[:16]


def keys_digest(items: Sequence[Item]) -> str:
    return hashlib.sha256("\n".join(i.key for i in items).encode()).hexdigest()[:16]


@dataclass(kw_only=True)
class LiveRun:
    """A run as this process holds it: the workflow, the items and the context they run in."""

    spec: RunSpec
    workflow: Workflow
    items: list[Item]
    base: RunContext
    item_budget: Callable[[], Budget] | None = None
    on_item_done: Callable[[ItemResult], None] | None = None
    stop: BudgetExceededError | None = None
    errors: dict[int, BaseException] = field(default_factory=dict)
    """The exceptions of failed items run in this process (their recorded form is text)."""
    store: RunStore | None = None


_live: dict[tuple[str, int], LiveRun] = {}
"""Runs by (run id, thread): DBOS runs recovered workflows on its own event loop thread,
where they get their own store connection and gateway (neither may cross threads)."""


def _here(run_id: str) -> tuple[str, int]:
    return (run_id, threading.get_ident())


def _check(spec: RunSpec, workflow: Workflow, items: Sequence[Item]) -> None:
    code = fingerprint(workflow.step)
    if code != spec.code:
        raise CodeChangedError(
            f"run {spec.run_id} was started with other code for workflow {spec.workflow!r} "
            f"(its steps changed: fingerprint {spec.code}, now {code}): resume it with the "
            "code it started with, or start a new run"
        )
    if len(items) != spec.items_total or keys_digest(items) != spec.keys_digest:
        raise ConfigError(
            f"the inputs of run {spec.run_id} changed since it started ({spec.source}: "
            f"{spec.items_total} items then, {len(items)} now): restore them, or start a new run"
        )


def _gateway(spec: RunSpec) -> Gateway:
    overrides: dict[str, Any] = {}
    if spec.model:
        overrides["model"] = spec.model
    if spec.base_url:
        overrides["base_url"] = spec.base_url
    settings = Settings().model_copy(update=overrides)
    if spec.gateway:
        module, _, attr = spec.gateway.partition(":")
        gateway: Gateway = getattr(importlib.import_module(module), attr)(settings)
    else:
        gateway = Gateway(settings)
    return DurableGateway.adopt(gateway)


def attach(spec: RunSpec) -> LiveRun:
    """Rebuild a run in this process from its spec (a resume, or a worker's first item of it)."""
    live = _live.get(_here(spec.run_id))
    if live is not None:
        return live
    from ..workflows import load_workflow

    workflow = load_workflow(spec.workflow)
    if workflow.load is None or spec.source is None:
        raise ConfigError(f"workflow {spec.workflow!r} does not read inputs from files")
    items = workflow.load(Path(spec.source))
    _check(spec, workflow, items)
    gateway = _gateway(spec)
    store = RunStore(gateway.settings.db_path)
    if spec.cache:
        gateway.cache = ResponseCache(store)
    if not _has_run(store, spec.run_id):
        store.start_run(
            spec.run_id, workflow=workflow.name, model=gateway.settings.model,
            source=spec.source, out_dir=spec.out_dir, items_total=spec.items_total,
        )  # fmt: skip
    budget = spec.budget()
    live = LiveRun(
        spec=spec,
        workflow=workflow,
        items=items,
        base=RunContext(
            gateway=gateway,
            run_id=spec.run_id,
            hooks=(StoreRecorder(store),),
            out_dir=Path(spec.out_dir) if spec.out_dir else None,
            budgets=(budget,) if budget is not None else (),
        ),
        item_budget=spec.item_budget(),
        store=store,
    )
    _live[_here(spec.run_id)] = live
    return live


def _has_run(store: RunStore, run_id: str) -> bool:
    return store.db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None


@DBOS.workflow(name="llmflow.item")
async def item_workflow(spec_data: dict[str, Any], index: int, key: str) -> dict[str, Any]:
    """One item of a run: its step on its input, under the run's context."""
    spec = RunSpec.model_validate(spec_data)
    live = attach(spec)
    item = live.items[index]
    if item.key != key:
        raise ConfigError(f"item {index} of run {spec.run_id} is {item.key!r}, not {key!r}")
    if live.stop is not None:  # the run's budget is spent: start nothing more
        return {"ok": False, "skipped": True, "error": str(live.stop), "type": "stopped"}
    budgets = [live.item_budget()] if live.item_budget else []
    ctx = live.base.for_item(new_id(), *budgets)
    started_at = time.time()
    for hook in ctx.hooks:
        hook.on_item_start(ctx, key=key)
    output: Any = None
    error: BaseException | None = None
    try:
        output = await live.workflow.step(item.value, ctx)
    except DBOSUnexpectedStepError as e:
        error = e
        raise CodeChangedError(
            f"run {spec.run_id}, item {key!r}: the recorded steps do not match the code "
            f"({e}); resume it with the code it started with"
        ) from e
    except BudgetExceededError as e:
        error = e
        if e.scope != "item":
            live.stop = live.stop or e
    except Exception as e:
        error = e
    except BaseException as e:  # cancelled: recorded as interrupted, the workflow stays pending
        error = e
        raise
    finally:
        for hook in ctx.hooks:
            hook.on_item_end(ctx, key=key, output=output, error=error, started_at=started_at)
    if error is None:
        return {"ok": True, "output": output}
    live.errors[index] = error
    scope = error.scope if isinstance(error, BudgetExceededError) else None
    return {"ok": False, "error": str(error), "type": type(error).__name__, "scope": scope}


def _item_result(live: LiveRun | None, index: int, key: str, record: dict[str, Any]) -> ItemResult:
    if record.get("ok"):
        return ItemResult(key=key, output=record.get("output"))
    error = live.errors.get(index) if live is not None else None
    if error is None:
        error = RecordedError(str(record.get("type")), str(record.get("error")), typed=False)
    return ItemResult(key=key, error=error)


async def run_durable(
    workflow: Workflow,
    items: Sequence[Item],
    *,
    spec: RunSpec,
    gateway: Gateway,
    hooks: Sequence[RunHooks] = (),
    store: RunStore | None = None,
    on_item_done: Callable[[ItemResult], None] | None = None,
    resuming: bool = False,
) -> BatchResult:
    """Run (or resume) `workflow` on `items` durably; needs `engine.launch()` first.

    Like `runtime.runner.run_batch`, with the same results and statuses; in shared mode
    (PostgreSQL) the items go to the run queue, for `llmflow worker` processes to take.
    """
    from .engine import launched

    settings = launched()
    if settings is None:
        raise RunError("the durable engine is not running: call llmflow.durable.launch() first")
    _check(spec, workflow, items)
    all_hooks = tuple(hooks)
    if store is not None:
        all_hooks = (StoreRecorder(store), *all_hooks)
        if not _has_run(store, spec.run_id):
            store.start_run(
                spec.run_id, workflow=workflow.name, model=spec.model or gateway.settings.model,
                source=spec.source, out_dir=spec.out_dir, items_total=len(items),
            )  # fmt: skip
        elif resuming:
            store.add("UPDATE runs SET status = 'running', ended_at = NULL WHERE id = ?",
                      (spec.run_id,))  # fmt: skip
            store.flush()
    budget = spec.budget()
    out_dir = Path(spec.out_dir) if spec.out_dir else None
    live = LiveRun(
        spec=spec,
        workflow=workflow,
        items=list(items),
        base=RunContext(
            gateway=DurableGateway.adopt(gateway),
            run_id=spec.run_id,
            hooks=all_hooks,
            out_dir=out_dir,
            budgets=(budget,) if budget is not None else (),
        ),
        item_budget=spec.item_budget(),
        on_item_done=on_item_done,
        store=store,
    )
    _live[_here(spec.run_id)] = live
    recovered = await _recover(spec.run_id) if resuming else {}
    slots: list[ItemResult | None] = [None] * len(items)
    data = spec.model_dump()
    interrupted = False
    try:
        if settings.shared:
            await _via_queue(live, data, slots)
        else:
            await _in_process(live, data, slots, recovered)
    except asyncio.CancelledError:
        interrupted = True
    finally:
        _live.pop(_here(spec.run_id), None)
    results = [r for r in slots if r is not None]
    stop = live.stop
    if stop is None:  # items that ran in another process may have been stopped there
        stop_error = next((r.error for r in results if _is_stop(r.error)), None)
    else:
        stop_error = stop
    from ..runtime.runner import _status

    batch = BatchResult(
        run_id=spec.run_id,
        workflow=workflow.name,
        results=[r for r in results if not _skipped(r)],
        status="stopped" if stop_error is not None and not interrupted
        else _status(results, interrupted),
        out_dir=out_dir,
        error=str(stop_error) if stop_error is not None else None,
    )  # fmt: skip
    error = batch.error
    try:
        if workflow.finish is not None and not interrupted:
            batch.artifacts = workflow.finish(batch, live.base.child(workflow.name))
    except Exception as e:
        batch.status, error = "failed", f"finish: {type(e).__name__}: {e}"
        raise
    finally:
        if store is not None:
            store.end_run(
                spec.run_id,
                status=batch.status,
                items_ok=sum(r.ok for r in batch.results),
                items_failed=sum(not r.ok for r in batch.results),
                error=error,
            )
    if interrupted:
        from ..runtime.runner import RunInterrupted

        raise RunInterrupted(batch)
    return batch


def _skipped(result: ItemResult) -> bool:
    return isinstance(result.error, RecordedError) and result.error.type_name == "stopped"


def _is_stop(error: BaseException | None) -> bool:
    if isinstance(error, BudgetExceededError):
        return error.scope != "item"
    return isinstance(error, RecordedError) and error.type_name == "stopped"


async def _in_process(
    live: LiveRun,
    data: dict[str, Any],
    slots: list[ItemResult | None],
    recovered: dict[str, Any],
) -> None:
    indices = iter(range(len(live.items)))

    async def worker() -> None:
        for index in indices:
            if live.stop is not None:
                return
            await one(index)

    async def one(index: int) -> None:
        key = live.items[index].key
        workflow_id = f"{live.spec.run_id}/{index}"
        if workflow_id in recovered:  # running on DBOS's own loop: poll for the result
            polled: Any = await DBOS.retrieve_workflow_async(workflow_id)
            record = await polled.get_result(polling_interval_sec=0.1)
        else:
            with SetWorkflowID(workflow_id):
                handle = await DBOS.start_workflow_async(item_workflow, data, index, key)
            record = await handle.get_result()
        _done(live, slots, index, key, record)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(live.spec.concurrency, len(live.items))):
            group.create_task(worker())


async def _via_queue(live: LiveRun, data: dict[str, Any], slots: list[ItemResult | None]) -> None:
    queue = await DBOS.retrieve_queue_async(RUN_QUEUE)
    if queue is None:
        # Created paused (no worker takes anything) until a worker registers its limits: a
        # queue created here without limits let a worker starting at the same moment take
        # every item at once, whatever its --concurrency (it reads the queue's row before it
        # writes its own limits into it).
        queue = await DBOS.register_queue_async(
            RUN_QUEUE, worker_concurrency=0, on_conflict="never_update"
        )
    handles = []
    for index, item in enumerate(live.items):
        with SetWorkflowID(f"{live.spec.run_id}/{index}"):
            handles.append(await queue.enqueue_async(item_workflow, data, index, item.key))
    for index, handle in enumerate(handles):
        record = await handle.get_result(polling_interval_sec=0.1)
        _done(live, slots, index, live.items[index].key, record)


def _done(live: LiveRun, slots: list[ItemResult | None], index: int, key: str, record: Any) -> None:
    result = _item_result(live, index, key, record)
    slots[index] = result
    if live.on_item_done is not None and not _skipped(result):
        live.on_item_done(result)


async def _recover(run_id: str) -> dict[str, Any]:
    """Take over the run's items left pending by processes that died; refuse while the
    process that runs them is alive."""
    from .engine import executor_alive

    pending = await DBOS.list_workflows_async(
        workflow_id_prefix=f"{run_id}/", status="PENDING", load_input=False, load_output=False
    )
    executors = {w.executor_id for w in pending if w.executor_id}
    alive = sorted(e for e in executors if executor_alive(e))
    if alive:
        raise ConfigError(
            f"run {run_id} is still running in another process ({', '.join(alive)}): "
            "wait for it, or stop it first"
        )
    if not executors:
        return {}
    handles = await asyncio.to_thread(DBOS._recover_pending_workflows, sorted(executors))
    return {h.workflow_id: h for h in handles if h.workflow_id.startswith(f"{run_id}/")}


async def find_spec(run_id: str) -> RunSpec | None:
    """The spec of run `run_id`, from its first item workflow; None if it has none."""
    rows = await DBOS.list_workflows_async(
        workflow_id_prefix=f"{run_id}/", limit=1, load_input=True, load_output=False
    )
    if not rows or rows[0].input is None:
        return None
    return RunSpec.model_validate(rows[0].input["args"][0])


async def unfinished_runs() -> list[str]:
    """Runs with items still pending or enqueued (newest first)."""
    found: dict[str, float] = {}
    for status in ("PENDING", "ENQUEUED"):
        rows = await DBOS.list_workflows_async(
            status=status, name="llmflow.item", load_input=False, load_output=False
        )
        for w in rows:
            run_id = w.workflow_id.rsplit("/", 1)[0]
            found[run_id] = max(found.get(run_id, 0.0), float(w.created_at or 0))
    return sorted(found, key=lambda r: -found[r])
