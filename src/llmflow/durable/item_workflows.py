"""Items as DBOS workflows: for runs whose steps may wait for a person (an approval waits in
a DBOS workflow) and runs shared through PostgreSQL (workers take items from DBOS's queue).
Imported only when such a run starts, with DBOS (`engine.launch`); other runs never load it
(`batch.py`).

Every item workflow gets the run's `RunSpec` (plain JSON) as its input: it is all a process
needs to rebuild the run - `llmflow resume` in another process, or a worker on another
machine taking items from the shared queue (the inputs must be readable there).
"""

from __future__ import annotations

import asyncio
from typing import Any

from dbos import DBOS, SetWorkflowID

from ..errors import ConfigError
from ..runtime.runner import Item, ItemExecutor, ItemResult
from .batch import DurableRun, RunSpec, attach, item_result, run_item_record
from .dbos_api import recover_pending_workflows
from .ledger import enter_item

RUN_QUEUE = "llmflow-runs"
"""The queue workers take items from (shared mode)."""


@DBOS.workflow(name="llmflow.item")
async def item_workflow(spec_data: dict[str, Any], index: int, key: str) -> dict[str, Any]:
    """One item of a run: the run's item lifecycle (`BatchRun.run_item`), checkpointed."""
    spec = RunSpec.stored(spec_data)
    live = attach(spec)
    item = live.items[index]
    if item.key != key:
        raise ConfigError(f"item {index} of run {spec.run_id} is {item.key!r}, not {key!r}")
    if live.ledger is None:
        return await run_item_record(live, index, item)
    enter_item(live.ledger.item(f"{spec.run_id}/{index}", local=False))
    record = await run_item_record(live, index, item)
    await live.ledger.commit()  # the item's rows, before DBOS records its result
    return record


def in_process(live: DurableRun, data: dict[str, Any], recovered: dict[str, Any]) -> ItemExecutor:
    """Items as workflows started by this process (or, when recovered from a process that
    died, running on DBOS's own loop: their results are polled)."""

    async def execute(index: int, item: Item) -> ItemResult:
        workflow_id = f"{live.spec.run_id}/{index}"
        if workflow_id in recovered:
            polled: Any = await DBOS.retrieve_workflow_async(workflow_id)
            record = await polled.get_result(polling_interval_sec=0.1)
        else:
            with SetWorkflowID(workflow_id):
                handle = await DBOS.start_workflow_async(item_workflow, data, index, item.key)
            record = await handle.get_result()
        return item_result(live, index, item.key, record)

    return execute


async def via_queue(live: DurableRun, data: dict[str, Any]) -> ItemExecutor:
    """Items as workflows on the shared run queue, taken by `llmflow worker` processes."""
    queue = await DBOS.retrieve_queue_async(RUN_QUEUE)
    if queue is None:
        # Created paused (no worker takes anything) until a worker registers its limits: a
        # queue created here without limits let a worker starting at the same moment take
        # every item at once, whatever its --concurrency (it reads the queue's row before it
        # writes its own limits into it).
        queue = await DBOS.register_queue_async(
            RUN_QUEUE, worker_concurrency=0, on_conflict="never_update"
        )

    async def execute(index: int, item: Item) -> ItemResult:
        with SetWorkflowID(f"{live.spec.run_id}/{index}"):
            handle = await queue.enqueue_async(item_workflow, data, index, item.key)
        record = await handle.get_result(polling_interval_sec=0.1)
        return item_result(live, index, item.key, record)

    return execute


async def recover(run_id: str) -> dict[str, Any]:
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
    handles = await asyncio.to_thread(recover_pending_workflows, sorted(executors))
    return {h.workflow_id: h for h in handles if h.workflow_id.startswith(f"{run_id}/")}


async def stored_spec(run_id: str) -> RunSpec | None:
    """The spec of run `run_id`, from its first item workflow; None if it has none."""
    rows = await DBOS.list_workflows_async(
        workflow_id_prefix=f"{run_id}/", limit=1, load_input=True, load_output=False
    )
    if not rows or rows[0].input is None:
        return None
    return RunSpec.stored(rows[0].input["args"][0])


async def pending_runs() -> list[str]:
    """Runs with item workflows still pending or enqueued (newest first)."""
    found: dict[str, float] = {}
    for status in ("PENDING", "ENQUEUED"):
        rows = await DBOS.list_workflows_async(
            status=status, name="llmflow.item", load_input=False, load_output=False
        )
        for w in rows:
            run_id = w.workflow_id.rsplit("/", 1)[0]
            found[run_id] = max(found.get(run_id, 0.0), float(w.created_at or 0))
    return sorted(found, key=lambda r: -found[r])
