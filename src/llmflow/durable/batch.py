"""Durable batch runs: each item `<run id>/<item index>` is checkpointed as it runs.

The driver (`run_durable`) starts the items, at most `concurrency` at once, in input order,
and collects their results. An item's model calls and side effects are checkpointed (in the
run store with the calls' own records, `ledger.py`; as DBOS steps in runs that other machines
share), so when a process dies mid-batch, `resume` finishes the run: items that completed
return their recorded results without running, the items cut off replay their completed
calls and effects from the checkpoints and run only what was in flight, and the items never
started start.

Where its items run:

- **without a DBOS workflow** (`_local`), when no step of the workflow may wait for a
  person (`Step.may_ask_approval`) and the run is not shared: the item's result is a
  checkpoint too, committed with its rows, and the run's spec is kept in the run store. This
  is the default path's cost: no DBOS transaction per item (`bench/PROFILE-default.md`).
- **as a DBOS workflow** (`item_workflows.py`) otherwise: an approval waits in DBOS (`recv`), and
  the shared queue hands items to workers on other machines. Every item workflow gets the
  run's `RunSpec` (plain JSON) as its input: it is all a process needs to rebuild the run -
  `llmflow resume` in another process, or a worker taking items from the shared queue (the
  inputs must be readable there).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BudgetExceededError, ConfigError, RunError
from ..models.cache import ResponseCache
from ..models.gateway import Gateway
from ..redact import redact_url
from ..runtime.recording import StoreRecorder
from ..runtime.runner import (
    BatchResult,
    BatchRun,
    Item,
    ItemExecutor,
    ItemResult,
    Skipped,
    Workflow,
)
from ..runtime.telemetry import telemetry_hooks
from ..settings import Settings
from ..steps.context import RunContext, RunHooks
from ..store.sqlite import RunStore
from .effects import DURABLE
from .engine import DurableSettings
from .gateway import DurableGateway
from .ledger import SPEC, CallLedger, enter_item, leave_item
from .run_spec import CodeChangedError as CodeChangedError
from .run_spec import RunSpec as RunSpec
from .run_spec import fingerprint as fingerprint
from .run_spec import keys_digest as keys_digest
from .serialization import RecordedError


@dataclass(kw_only=True)
class DurableRun(BatchRun):
    """A batch run as this process holds it, with what rebuilding it needs."""

    spec: RunSpec
    """The run's spec, as stored with its item workflows."""
    errors: dict[int, BaseException] = field(default_factory=dict)
    """The exceptions of failed items run in this process (their recorded form is text)."""
    ledger: CallLedger | None = None
    """Where the items' model calls and effects are checkpointed; None: as DBOS steps."""
    local: bool = False
    """Its items run without DBOS workflows, checkpointed in the run store alone (a run
    that no step may pause for an approval: see the module's docstring)."""


_live: dict[tuple[str, int], DurableRun] = {}
"""Runs by (run id, thread): DBOS runs recovered workflows on its own event loop thread,
where they get their own store connection and gateway (neither may cross threads)."""


def _here(run_id: str) -> tuple[str, int]:
    return (run_id, threading.get_ident())


def detach(run_id: str) -> None:
    """Forget this thread's copy of run `run_id` (the next `attach` rebuilds it)."""
    live = _live.pop(_here(run_id), None)
    if live is not None and live.store is not None:
        live.store.close()


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
    settings = Settings()
    if spec.base_url:
        # The spec holds no credentials: those of a user:KEY@ URL come from the environment
        # when its OPENAI_BASE_URL is the same endpoint.
        here = settings.base_url
        overrides["base_url"] = (
            here if here is not None and redact_url(here) == spec.base_url else spec.base_url
        )
    settings = settings.model_copy(update=overrides)
    if spec.gateway:
        module, _, attr = spec.gateway.partition(":")
        gateway: Gateway = getattr(importlib.import_module(module), attr)(settings)
    else:
        gateway = Gateway(settings)
    return DurableGateway.adopt(gateway)


def _durable_run(
    spec: RunSpec,
    workflow: Workflow,
    items: Sequence[Item],
    gateway: Gateway,
    store: RunStore | None,
    hooks: Sequence[RunHooks] = (),
) -> DurableRun:
    budget = spec.budget()
    ledger = _ledger(spec, store)
    local = ledger is not None and not workflow.step.may_ask_approval(spec.run_id)
    # With a ledger, the ledger commits the records (with the checkpoints, grouped).
    recorder = (StoreRecorder(store, durable=True, commits=ledger is None),) if store else ()
    return DurableRun(
        spec=spec,
        workflow=workflow,
        items=list(items),
        base=RunContext(
            gateway=DurableGateway.adopt(gateway),
            run_id=spec.run_id,
            hooks=(*recorder, *hooks, *telemetry_hooks()),
            out_dir=Path(spec.out_dir) if spec.out_dir else None,
            budgets=(budget,) if budget is not None else (),
            effects=DURABLE,
        ),
        store=store,
        item_budget=spec.item_budget(),
        ledger=ledger,
        local=local,
    )


def needs_dbos(spec: RunSpec, workflow: Workflow, settings: DurableSettings) -> bool:
    """Whether the run's items need DBOS workflows (see the module's docstring): a step may
    wait for a person, the run is shared, or it keeps its calls as DBOS steps."""
    return not _in_store(spec, settings) or workflow.step.may_ask_approval(spec.run_id)


def _in_store(spec: RunSpec, settings: DurableSettings) -> bool:
    """Whether the run checkpoints its calls in its run store (not as DBOS steps: started so,
    or shared between machines, whose run stores are their own)."""
    return not settings.shared and spec.call_checkpoints == "store"


def _ledger(spec: RunSpec, store: RunStore | None) -> CallLedger | None:
    """The run's call ledger, when it checkpoints its calls in its run store (`_in_store`)."""
    from .engine import launched

    settings = launched()
    if store is None or settings is None or not _in_store(spec, settings):
        return None
    if settings.fsync:  # LLMFLOW_DURABLE_FSYNC: every checkpoint on disk, as DBOS's would be
        store.db.execute("PRAGMA synchronous=FULL")
    return CallLedger(store, settings.serializer())


def attach(spec: RunSpec) -> DurableRun:
    """Rebuild a run in this process from its spec (a resume, or a worker's first item of it)."""
    live = _live.get(_here(spec.run_id))
    if live is not None:
        return live
    from .engine import workflow_loader

    workflow = workflow_loader()(spec.workflow)
    if workflow.load is None or spec.source is None:
        raise ConfigError(f"workflow {spec.workflow!r} does not read inputs from files")
    items = workflow.load(Path(spec.source))
    _check(spec, workflow, items)
    gateway = _gateway(spec)
    store = RunStore(gateway.settings.db_path)
    if spec.cache:
        gateway.cache = ResponseCache(store)
    live = _durable_run(spec, workflow, items, gateway, store)
    if not store.has_run(spec.run_id):
        live.start(model=gateway.settings.model, source=spec.source)
    _live[_here(spec.run_id)] = live
    return live


async def run_item_record(live: DurableRun, index: int, item: Item) -> dict[str, Any]:
    """Run one item (`BatchRun.run_item`): its result as recorded, an error as text."""
    spec = live.spec
    if live.stop is not None:  # the run's budget is spent: start nothing more
        return {"ok": False, "skipped": True, "error": str(live.stop), "type": "stopped"}
    result = await live.run_item(index, item)
    error = result.error
    if error is None:
        return {"ok": True, "output": result.output}
    if _unexpected_step(error):
        raise CodeChangedError(
            f"run {spec.run_id}, item {item.key!r}: the recorded steps do not match the code "
            f"({error}); resume it with the code it started with"
        ) from error
    live.errors[index] = error
    scope = getattr(error, "scope", None)  # `run`: the run's budget, a provider down
    budget = error.budget if isinstance(error, BudgetExceededError) else None
    return {"ok": False, "error": str(error), "type": type(error).__name__, "scope": scope,
            "budget": budget}  # fmt: skip


def _unexpected_step(error: BaseException) -> bool:
    """Whether DBOS found the recorded steps of an item workflow unlike the code's."""
    if "dbos" not in sys.modules:  # no DBOS workflow ran in this process
        return False
    from .dbos_api import UnexpectedStepError

    return isinstance(error, UnexpectedStepError)


def item_result(live: DurableRun, index: int, key: str, record: dict[str, Any]) -> ItemResult:
    """An item's result from its workflow's record (the exception itself when it failed in
    this process)."""
    if record.get("ok"):
        return ItemResult(key=key, output=record.get("output"))
    message = str(record.get("error"))
    error: BaseException | None
    if record.get("skipped"):
        error = Skipped(message, budget="run", scope="run")
    else:
        error = live.errors.get(index)
    if (
        error is None
        and record.get("type") == "BudgetExceededError"
        and record.get("scope") == "run"
    ):
        # the run's budget, spent elsewhere
        error = BudgetExceededError(message, budget=str(record.get("budget")), scope="run")
    if error is None:
        error = RecordedError(str(record.get("type")), message, typed=False)
        error.scope = record.get("scope")  # a provider down elsewhere stops this run too
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

    The run's lifecycle is `runtime.runner.BatchRun`'s, as for `run_batch`, with the same
    results and statuses; only each item executes as a DBOS workflow. In shared mode
    (PostgreSQL) the items go to the run queue, for `llmflow worker` processes to take.
    """
    from .engine import dbos_running, launched

    settings = launched()
    if settings is None:
        raise RunError("the durable engine is not running: call llmflow.durable.launch() first")
    _check(spec, workflow, items)
    live = _durable_run(spec, workflow, items, gateway, store, hooks)
    live.on_item_done = on_item_done
    if resuming and store is not None:
        owner = store.claim_run(spec.run_id)
        if owner is not None:
            raise ConfigError(
                f"run {spec.run_id} is still running in another process ({owner[0]}, pid "
                f"{owner[1]}): wait for it, or stop it first"
            )
    if live.ledger is not None:
        live.ledger.save_spec(spec.run_id, spec.model_dump())  # committed with the run's start
    live.start(
        model=spec.model or gateway.settings.model, source=spec.source,
        resuming=store is not None and store.has_run(spec.run_id),
        # Items that run here commit through the ledger: the run's start row (and spec) go
        # with the first checkpoint, one commit fewer per run. Killed before that, the run
        # has nothing to resume, as when killed before its start was committed.
        commit=not live.local,
    )  # fmt: skip
    _live[_here(spec.run_id)] = live
    data = spec.model_dump()
    try:
        if not live.local and not dbos_running():
            raise RunError(
                f"run {spec.run_id} needs DBOS (a step may wait for a person, or the run is "
                "shared): start the durable engine with llmflow.durable.launch(), not configure()"
            )
        if settings.shared:
            from .item_workflows import via_queue

            execute = await via_queue(live, data)
            concurrency = max(1, len(items))  # the queue bounds what runs, not this driver
        else:
            recovered: dict[str, Any] = {}
            if resuming and dbos_running():
                from .item_workflows import recover

                recovered = await recover(spec.run_id)
            if resuming and store is not None:
                # No process runs this run any more (`claim_run` and `recover` checked):
                # calls left in flight by the one that died will never end; say so.
                store.interrupt_calls(spec.run_id)
            if live.local:
                execute = _local(live, resuming=resuming)
            else:
                from .item_workflows import in_process

                execute = in_process(live, data, recovered)
            concurrency = spec.concurrency
        # Items on the shared queue run on other machines: their use is not measured here.
        return await live.drive(
            execute, concurrency=concurrency, admits_by_item=not settings.shared
        )
    finally:
        _live.pop(_here(spec.run_id), None)


def _local(live: DurableRun, *, resuming: bool) -> ItemExecutor:
    """Items run here without DBOS workflows: each item's model calls and effects, then its
    result, are checkpointed in the run store (`ledger.py`), so a resumed run returns the
    results of finished items without running them and replays the others' checkpoints."""
    ledger = live.ledger
    assert ledger is not None
    finished = ledger.finished_items(live.run_id) if resuming else {}
    left = len(live.items)  # items not yet executed to their end

    async def execute(index: int, item: Item) -> ItemResult:
        nonlocal left
        workflow_id = f"{live.run_id}/{index}"
        record = finished.get(workflow_id)
        if record is None:
            token = enter_item(ledger.item(workflow_id, local=True, fresh=not resuming))
            try:
                record = await run_item_record(live, index, item)
            finally:
                leave_item(token)
            if not record.get("skipped"):
                ledger.record_item(workflow_id, record)  # with the item's rows, in one commit
                if left > 1:
                    await ledger.commit()
                # else: the run's last item; the run's end, next, commits it (killed before,
                # the item replays its checkpoints, which the same commit drops)
        left -= 1
        return item_result(live, index, item.key, record)

    return execute


async def find_spec(run_id: str) -> RunSpec | None:
    """The spec of run `run_id`: from the run store, or from its first item workflow; None
    if it has none."""
    from .engine import dbos_running, launched

    settings = launched()
    with _store() as store:
        text = store.checkpoints(run_id).get(SPEC)
    if text is not None:
        serializer = (settings or DurableSettings()).serializer()  # its encryption key
        return RunSpec.stored(serializer.deserialize(text))
    if not dbos_running():
        return None
    from .item_workflows import stored_spec

    return await stored_spec(run_id)


async def unfinished_runs() -> list[str]:
    """Runs with items still pending or enqueued, or interrupted (newest first)."""
    from .engine import dbos_running

    with _store() as store:
        local = store.runs_to_resume()
    if not dbos_running():
        return local
    from .item_workflows import pending_runs

    dbos = await pending_runs()
    return [*local, *(r for r in dbos if r not in local)]


@contextlib.contextmanager
def _store() -> Iterator[RunStore]:
    """This machine's run store (where runs without DBOS workflows keep their spec)."""
    store = RunStore(Settings().db_path)
    try:
        yield store
    finally:
        store.close()
