"""Durable runs from the command line: `run` (durable by default), `resume`, `approvals
list`, `approve`, `reject` and `worker`."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..analysis.costs import summarise
from ..errors import ConfigError, RunError, UnknownRunError
from ..ids import new_id
from .app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    BatchProgress,
    dollars,
    err,
    fail,
    out,
)
from .signals import EXIT_TERMINATED, run_until_signal, terminated

if TYPE_CHECKING:  # the commands import what they use: `llmflow --help` starts fast
    from ..durable.batch import RunSpec
    from ..models.budget import Budget
    from ..runtime.runner import BatchResult
    from .run import Job


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("worker")(worker)
    approvals = typer.Typer(help="Runs waiting for a person's approval.", no_args_is_help=True)
    approvals.command("list")(approvals_list)
    app.add_typer(approvals, name="approvals")


def _workflow_ref(ref: str) -> str:
    """A workflow reference a later process can load: file paths made absolute."""
    path = Path(ref)
    return str(path.resolve()) if ":" not in ref and path.exists() else ref


def execute_durable(
    job: Job,
    *,
    ref: str,
    out_dir: Path | None,
    budget: Budget | None = None,
    item_budget: Callable[[], Budget] | None = None,
    quiet: bool = False,
    run_id: str | None = None,
) -> BatchResult:
    """`llmflow run`, durably: each item a DBOS workflow, resumable with `llmflow resume`.

    `run_id` names the run (a mailbox snapshot's); a run of that id already recorded is
    taken up where it stopped, its finished items and effects not repeated."""
    from ..durable import engine
    from ..durable.batch import RunSpec, fingerprint, keys_digest, needs_dbos
    from ..redact import redact_url

    run_id = run_id or new_id()
    target = out_dir or Path("llmflow-out") / job.workflow.name / run_id
    per_item = item_budget().max_cost if item_budget is not None else None
    spec = RunSpec(
        run_id=run_id,
        workflow=_workflow_ref(ref),
        source=str(Path(job.source).resolve()),
        items_total=len(job.items),
        keys_digest=keys_digest(job.items),
        code=fingerprint(job.workflow.step),
        model=job.settings.model,
        base_url=redact_url(job.settings.base_url) if job.settings.base_url else None,
        concurrency=job.concurrency,
        out_dir=str(target.resolve()),
        cache=job.cache,
        max_cost=str(budget.max_cost) if budget and budget.max_cost is not None else None,
        max_tokens=budget.max_tokens if budget else None,
        max_requests=budget.max_requests if budget else None,
        max_cost_per_item=str(per_item) if per_item is not None else None,
    )
    try:
        from ..workflows import load_workflow

        settings = engine.DurableSettings()
        if needs_dbos(spec, job.workflow, settings):
            engine.launch(settings, load_workflow=load_workflow)
        else:  # its items run without DBOS: it is not even imported (~0.75 s)
            engine.configure(settings, load_workflow=load_workflow)
        return _drive(job, spec, resuming=_recorded(job, run_id), quiet=quiet)
    except ConfigError as e:
        raise fail(str(e)) from None
    finally:
        engine.shutdown()


def _recorded(job: Job, run_id: str) -> bool:
    """Whether run `run_id` is in the run store already (it is taken up, not started)."""
    from ..store.sqlite import RunStore

    store = RunStore(job.settings.db_path)
    try:
        return store.has_run(run_id)
    finally:
        store.close()


def _drive(job: Job, spec: RunSpec, *, resuming: bool, quiet: bool) -> BatchResult:
    from ..durable.batch import run_durable
    from ..models.cache import ResponseCache
    from ..runtime.runner import RunInterrupted
    from ..store.sqlite import RunStore

    store = RunStore(job.settings.db_path)
    if job.cache:
        job.gateway.cache = ResponseCache(store)
    progress = BatchProgress(
        f"{job.workflow.name} on {job.settings.model}", len(job.items), quiet=quiet
    )

    async def drive() -> BatchResult:
        try:
            return await run_durable(
                job.workflow, job.items, spec=spec, gateway=job.gateway, store=store,
                on_item_done=progress.done, resuming=resuming,
            )  # fmt: skip
        except RunInterrupted as e:
            return e.batch
        finally:
            await job.gateway.aclose()

    try:
        with progress:
            batch = run_until_signal(drive())
        job.summary = summarise(store.call_costs(spec.run_id))
    except ConfigError as e:
        raise fail(str(e)) from None
    finally:
        store.close()
    return batch


def resume(
    run_id: Annotated[
        str | None, typer.Argument(help="The run to resume. [default: every interrupted run]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    max_cost: Annotated[
        Decimal | None,
        typer.Option(
            callback=dollars,
            metavar="<dollars>",
            help="The run's new dollar budget, counting what it spent already (a run its "
            "budget stopped goes on with the items not started). \\[default: the run's own]",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="The run's new token budget. \\[default: its own]")
    ] = None,
    max_requests: Annotated[
        int | None,
        typer.Option(min=1, help="The run's new model-call budget. \\[default: its own]"),
    ] = None,
) -> int:
    """Finish interrupted durable runs: completed model calls and effects are not repeated."""
    import asyncio

    from ..durable import engine
    from ..durable.batch import find_spec, unfinished_runs

    budget = {
        name: value
        for name, value in (
            ("max_cost", None if max_cost is None else str(max_cost)),
            ("max_tokens", max_tokens),
            ("max_requests", max_requests),
        )
        if value is not None
    }
    if budget and run_id is None:
        raise fail("a new budget is for one run: name it (llmflow resume <run id> --max-cost …)")
    try:
        from ..workflows import load_workflow

        engine.launch(load_workflow=load_workflow)
        unknown: UnknownRunError | None = None
        if run_id is not None:
            full_id, unknown, status = _full_run_id(run_id)
            run_ids = [full_id]
            if status == "ok":
                # Said, not refused: resuming it rewrites its results from its checkpoints
                # (a deleted results folder comes back) without running anything again.
                err.print(f"run {full_id} had finished (ok): nothing runs again; its results "
                          "are written again from its records")  # fmt: skip
        else:
            run_ids = asyncio.run(unfinished_runs())
            if not run_ids:
                out.print("no interrupted runs")
                return EXIT_OK
        codes = []
        for rid in run_ids:
            spec = asyncio.run(find_spec(rid))
            if spec is None and unknown is not None:
                raise unknown
            if spec is None:
                raise ConfigError(
                    f"run {rid} has no durable record (it ran with --no-durable, or stopped "
                    "before its first item): start it again"
                )
            # The budget counts what the run spent before (budgets persist across a resume):
            # raising it lets a run its budget stopped start the items it had to leave.
            codes.append(_resume_one(spec.model_copy(update=budget), as_json))
    except ConfigError as e:
        raise fail(str(e)) from None
    finally:
        engine.shutdown()
    return max(codes, default=EXIT_OK)


def _full_run_id(run_id: str) -> tuple[str, UnknownRunError | None, str | None]:
    """The full id of the run `run_id` names (a unique prefix; an ambiguous one is refused)
    and its status in this store; when this store has no such run, the error to give if no
    durable record has it either (it may be a run recorded in another machine's store)."""
    from ..settings import Settings
    from ..store.sqlite import RunStore

    store = RunStore(Settings().db_path)
    try:
        row = store.find_run(run_id)
        return str(row["id"]), None, str(row["status"])
    except UnknownRunError as e:
        return run_id, e, None
    finally:
        store.close()


def _resume_one(spec: RunSpec, as_json: bool) -> int:
    from ..durable.batch import attach, detach
    from .run import Job, report

    live = attach(spec)  # loads the workflow and inputs, and checks the code and inputs
    detach(spec.run_id)  # `_drive` runs it afresh, with this process's progress and store
    gateway = live.base.gateway
    job = Job(
        settings=gateway.settings,
        gateway=gateway,
        workflow=live.workflow,
        items=live.items,
        source=spec.source or "",
        concurrency=spec.concurrency,
        cache=spec.cache,
    )
    err.print(f"resuming run {spec.run_id} ({spec.workflow} on {spec.source})")
    batch = _drive(job, spec, resuming=True, quiet=as_json)
    if batch.status == "stopped":
        err.print(f"[bold red]stopped:[/] {batch.error}", highlight=False)
        budget_hint(batch, spec.run_id)
    if batch.status == "interrupted":
        err.print(
            f"[yellow]interrupted[/]{' by SIGTERM' if terminated() else ''}: finish it with: "
            f"llmflow resume {spec.run_id}",
            highlight=False,
            soft_wrap=True,
        )
    report(batch, live.workflow, as_json, job.summary, gateway.pricing, "openai:gpt-4.1-mini")
    if batch.status == "interrupted" and terminated():
        return EXIT_TERMINATED
    return {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "interrupted": EXIT_INTERRUPTED}.get(
        batch.status, EXIT_FAILED
    )


def budget_hint(batch: BatchResult, run_id: str) -> None:
    """After a stop on the run's budget: how to go on with a larger one."""
    if batch.error is not None and "budget" in batch.error and "--max-" in batch.error:
        err.print(
            f"go on with a larger budget: llmflow resume {run_id} --max-cost <dollars> "
            "(or --max-tokens, --max-requests)",
            highlight=False,
            soft_wrap=True,
        )


# -- approvals ------------------------------------------------------------------------------


def _client() -> Any:
    from ..durable.inbox import open_client

    try:
        return open_client()
    except ConfigError as e:
        raise fail(str(e)) from None


def _pending(client: Any, run_id: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(item workflow id, step path, request) of every approval still waiting."""
    from ..durable.inbox import pending_approvals

    try:
        return [(p.workflow_id, p.path, p.request) for p in pending_approvals(client, run_id)]
    except ConfigError as e:
        raise fail(str(e)) from None


def approvals_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> int:
    """Approvals that runs are waiting for."""
    import json

    client = _client()
    pending = _pending(client) if client is not None else []
    if as_json:
        payload = [
            {"run": wid.rsplit("/", 1)[0], "item": wid, "step": path, **req}
            for wid, path, req in pending
        ]
        out.print_json(json.dumps(payload))
        return EXIT_OK
    if not pending:
        out.print("no approvals waiting")
        return EXIT_OK
    table = Table(title="approvals waiting", title_justify="left")
    for col in ("run", "item", "step", "waiting", "request"):
        table.add_column(col, overflow="fold")
    for wid, path, req in pending:
        waited = time.time() - float(req.get("requested_at", time.time()))
        default = f" (then {req['default']})" if req.get("timeout_s") else ""
        table.add_row(wid.rsplit("/", 1)[0], wid, path, f"{waited / 60:.0f} min{default}",
                      escape(str(req.get("prompt", ""))))  # fmt: skip
    out.print(table)
    out.print("answer with: llmflow approve <run> [--comment ...] or llmflow reject <run>")
    return EXIT_OK


def _decide(run: str, approved: bool, comment: str | None, step: str | None) -> int:
    from ..durable.inbox import decide

    try:
        chosen = decide(_client(), run, approved=approved, comment=comment, step=step)
    except ConfigError as e:
        raise fail(str(e)) from None
    verb = "approved" if approved else "rejected"
    out.print(f"{verb} {chosen.path} in {chosen.workflow_id}")
    return EXIT_OK


def approve(
    run: Annotated[str, typer.Argument(help="The run (or <run>/<item> when several wait).")],
    comment: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    step: Annotated[str | None, typer.Option(help="The approval step, when several wait.")] = None,
) -> int:
    """Approve what a run is waiting for; it goes on (in its process, or on resume)."""
    return _decide(run, True, comment, step)


def reject(
    run: Annotated[str, typer.Argument(help="The run (or <run>/<item> when several wait).")],
    comment: Annotated[str | None, typer.Option(help="Why: shown in the item's error.")] = None,
    step: Annotated[str | None, typer.Option(help="The approval step, when several wait.")] = None,
) -> int:
    """Reject what a run is waiting for; the item fails with the reason."""
    return _decide(run, False, comment, step)


def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Items this worker runs at once.")] = 4,
    global_concurrency: Annotated[
        int | None, typer.Option(min=1, help="Items running at once on all workers together.")
    ] = None,
    rate: Annotated[
        int | None, typer.Option(min=1, help="Items started per --period on all workers.")
    ] = None,
    period: Annotated[float, typer.Option(min=0.001, help="Seconds of the --rate window.")] = 60.0,
    heartbeat_s: Annotated[float, typer.Option(min=0.1, help="Seconds between heartbeats.")] = 5.0,
    dead_after_s: Annotated[
        float, typer.Option(min=1, help="A worker silent this long is dead: its runs move.")
    ] = 30.0,
) -> int:
    """Take runs from the shared queue (LLMFLOW_DATABASE_URL=postgresql://...) until stopped."""
    from ..durable.worker import WorkerOptions, serve

    options = WorkerOptions(
        concurrency=concurrency, global_concurrency=global_concurrency, rate=rate,
        period_s=period, heartbeat_s=heartbeat_s, dead_after_s=dead_after_s,
    )  # fmt: skip
    try:
        from ..workflows import load_workflow

        serve(options, load_workflow=load_workflow)
    except ConfigError as e:
        raise fail(str(e)) from None
    except RunError as e:  # declared dead by another worker while it was too busy to beat
        raise fail(str(e), code=EXIT_FAILED) from None
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK
