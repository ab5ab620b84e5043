"""A workflow made ready to run from the CLI (`prepare`: settings, model, workflow, inputs,
every configuration error before any work starts) and run with a progress bar (`execute`).
`llmflow run`, `estimate`, `watch` and the durable commands share them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analysis.costs import CostSummary, summarise
from ..errors import ConfigError
from ..ids import new_id
from ..models.budget import Budget
from .app import BatchProgress, fail
from .mailboxes import mail_options, mailbox_snapshot
from .signals import run_until_signal

if TYPE_CHECKING:  # the work loads when a command runs, so that `llmflow --help` starts fast
    from ..models.gateway import Gateway
    from ..runtime.runner import BatchResult, Item, Workflow
    from ..settings import Settings
    from ..store.sqlite import RunStore


@dataclass(kw_only=True)
class Job:
    """A workflow ready to run from the CLI: settings, gateway, items, store."""

    settings: Settings
    gateway: Gateway
    workflow: Workflow
    items: list[Item]
    source: str
    concurrency: int
    cache: bool = True
    """Answer deterministic calls seen before from the response cache."""
    summary: CostSummary = field(default_factory=CostSummary)
    """The finished run's cost (set by `execute`)."""
    snapshot: str | None = None
    """For a mailbox input: the id of the snapshot of its new messages (the run's id too)."""
    source_url: str | None = None
    """For a mailbox input: its URL (no password)."""
    dry_run: bool = False
    """For a mailbox input: change nothing on the servers (`--dry-run`)."""


def prepare(
    workflow: str,
    inputs: Path | str,
    *,
    model: str | None,
    base_url: str | None,
    concurrency: int | None,
    cache: bool,
    send_replies: str | None = None,
    dry_run: bool = False,
    durable: bool = True,
) -> Job:
    """Resolve settings, model, workflow and inputs — every configuration error before any
    work starts (exit 2 with the message)."""
    from ..models.gateway import Gateway
    from ..settings import Settings
    from ..store.sqlite import RunStore
    from ..workflow_files import FileWorkflow
    from ..workflows import load_workflow

    try:
        mail = None
        if isinstance(inputs, str) and inputs.lower().startswith(("imaps://", "imap://")):
            from ..inputs.imap import check_source

            check_source(inputs)  # the URL, the login, the mailbox: before any other work
            mail = mail_options(send_replies, dry_run=dry_run, durable=durable)
        elif send_replies or dry_run:
            raise ConfigError(
                f"{'--send-replies' if send_replies else '--dry-run'} is for a mailbox: give "
                "imaps://user@host/INBOX as the input (docs/mailboxes.md)"
            )
        overrides: dict[str, Any] = {}
        if model:
            overrides["model"] = model
        if base_url:
            overrides["base_url"] = base_url
        settings = Settings().model_copy(update=overrides)
        wf = load_workflow(workflow)
        default_concurrency = None
        if isinstance(wf, FileWorkflow):
            # The file's model is a default: --model or LLMFLOW_MODEL win over it.
            if wf.model and not model and "model" not in settings.model_fields_set:
                settings = settings.model_copy(update={"model": wf.model})
            default_concurrency = wf.concurrency
        gateway = Gateway(settings)
        client, _ = gateway.resolve()  # a missing key fails now
        if isinstance(wf, FileWorkflow):
            wf.check_models(gateway)
        if wf.load is None:
            raise ConfigError(f"workflow {wf.name!r} does not read inputs from files")
        snapshot = source_url = None
        if isinstance(inputs, str) and inputs.lower().startswith(("imaps://", "imap://")):
            snapshot, source_url = mailbox_snapshot(inputs, settings, mail)
            inputs = snapshot.path
        inputs = Path(inputs)
        items = wf.load(inputs) if snapshot is None or snapshot.count else []
        RunStore(settings.db_path).close()  # the state directory is usable
    except ConfigError as e:
        raise fail(str(e)) from None
    return Job(
        settings=settings,
        gateway=gateway,
        workflow=wf,
        items=items,
        source=str(inputs),
        # The embedded model computes one call at a time: with more items in flight they
        # would only interleave, and none would finish early.
        concurrency=concurrency or default_concurrency or (1 if client.provider == "local" else 4),
        cache=cache,
        snapshot=snapshot.id if snapshot is not None else None,
        source_url=source_url,
        dry_run=dry_run,
    )


def execute(
    job: Job,
    *,
    out_dir: Path | None,
    budget: Budget | None = None,
    item_budget: Callable[[], Budget] | None = None,
    quiet: bool = False,
) -> BatchResult:
    """Run the job with a progress bar, recorded in the store; sets `job.summary`."""
    from ..models.cache import ResponseCache
    from ..store.sqlite import RunStore

    store = RunStore(job.settings.db_path)
    if job.cache:
        job.gateway.cache = ResponseCache(store)
    run_id = job.snapshot or new_id()  # a mailbox snapshot's run has its id
    target = out_dir or Path("llmflow-out") / job.workflow.name / run_id
    try:
        batch = run_until_signal(
            _run_with_progress(
                job.workflow,
                job.items,
                job.gateway,
                store,
                job.settings.model,
                job.concurrency,
                target,
                run_id,
                job.source,
                budget,
                item_budget,
                quiet=quiet,
            )
        )
        job.summary = summarise(store.call_costs(run_id))
    finally:
        store.close()
    return batch


async def _run_with_progress(
    wf: Workflow,
    items: list[Any],
    gateway: Gateway,
    store: RunStore,
    model: str,
    concurrency: int,
    out_dir: Path,
    run_id: str,
    source: str,
    budget: Budget | None,
    item_budget: Callable[[], Budget] | None,
    *,
    quiet: bool,
) -> BatchResult:
    from ..runtime.runner import RunInterrupted, run_batch

    with BatchProgress(f"{wf.name} on {model}", len(items), quiet=quiet) as progress:
        try:
            return await run_batch(
                wf,
                items,
                gateway=gateway,
                concurrency=concurrency,
                store=store,
                source=source,
                out_dir=out_dir,
                run_id=run_id,
                budget=budget,
                item_budget=item_budget,
                on_item_done=progress.done,
            )
        except RunInterrupted as e:
            # Ctrl-C: end normally with what finished, so asyncio.run returns it.
            return e.batch
        finally:
            await gateway.aclose()
