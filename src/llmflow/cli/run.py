"""`llmflow run`: run a workflow on a batch of inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..analysis.costs import CostSummary, summarise
from ..errors import ConfigError
from ..ids import new_id
from ..models.budget import Budget
from ..models.pricing import format_cost
from .app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    BatchProgress,
    dollars,
    endpoint,
    err,
    fail,
    out,
    usage_json,
    usd,
    writable_folder,
)
from .mailboxes import end_snapshot, mail_options, mailbox_snapshot
from .signals import EXIT_TERMINATED, run_until_signal, terminated

if TYPE_CHECKING:  # the work loads when a command runs, so that `llmflow --help` starts fast
    from ..models.gateway import Gateway
    from ..models.pricing import Pricing
    from ..runtime.runner import BatchResult, Item, Workflow
    from ..settings import Settings
    from ..store.sqlite import RunStore


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    workflow: Annotated[
        str,
        typer.Argument(
            help="A registered workflow (email-triage), a workflow file or a folder holding "
            "workflow.yaml, a template name (llmflow templates), or module:attr."
        ),
    ],
    inputs: Annotated[
        str,
        typer.Argument(
            help="The input: a file or a folder (e.g. of .eml files), or a mailbox: "
            "imaps://user@host/INBOX, its password in LLMFLOW_IMAP_PASSWORD (docs/mailboxes.md)."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Model: local, openai:<model>, or a model at --base-url. \\[env: LLMFLOW_MODEL]"
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            callback=endpoint,
            help="An OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp), e.g. "
            "http://localhost:8000/v1. \\[env: OPENAI_BASE_URL]",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1000,
            help="Items in flight at once. \\[default: 1 on the embedded model, which computes "
            "one call at a time, so that items finish in order; 4 elsewhere]",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder. \\[default: llmflow-out/<workflow>/<run id>]"),
    ] = None,
    max_cost: Annotated[
        Decimal | None,
        typer.Option(
            callback=dollars,
            metavar="<dollars>",
            help="Stop the run before it spends more dollars.",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Stop the run before it uses more tokens.")
    ] = None,
    max_requests: Annotated[
        int | None, typer.Option(min=1, help="Stop the run before it makes more model calls.")
    ] = None,
    max_cost_per_item: Annotated[
        Decimal | None,
        typer.Option(
            callback=dollars,
            metavar="<dollars>",
            help="Fail an item (not the run) that would spend more dollars.",
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Call the model even for deterministic calls seen before."),
    ] = False,
    compare: Annotated[
        str,
        typer.Option(help="Also show what the run's tokens would cost on this hosted model."),
    ] = "openai:gpt-4.1-mini",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    durable: Annotated[
        bool,
        typer.Option(
            "--durable/--no-durable",
            envvar="LLMFLOW_DURABLE",
            help="Checkpoint every model call and action, so that `llmflow resume` finishes an "
            "interrupted run without repeating them.",
        ),
    ] = True,
    send_replies: Annotated[
        str | None,
        typer.Option(
            envvar="LLMFLOW_SMTP_URL",
            metavar="smtp://user@host:587",
            help="On a mailbox input: send each drafted reply over SMTP once a person approved "
            "it (llmflow approve): smtp:// is STARTTLS, smtps:// TLS; ?max_per_run=10&"
            "max_per_day=50; the password in LLMFLOW_SMTP_PASSWORD (docs/mailboxes.md). "
            "\\[env: LLMFLOW_SMTP_URL]",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="On a mailbox input: change nothing on the mail servers and send nothing; "
            "the results say what would be flagged, drafted, filed and sent.",
        ),
    ] = False,
) -> int:
    """Run a workflow on a batch of inputs and record it, with its cost."""
    job = prepare(workflow, inputs, model=model, base_url=base_url, concurrency=concurrency,
                  cache=not no_cache, send_replies=send_replies, dry_run=dry_run,
                  durable=durable)  # fmt: skip
    if job.snapshot is not None and not job.items:
        err.print(f"no new messages in {job.source_url}", highlight=False, soft_wrap=True)
        return EXIT_OK
    writable_folder(out_dir or Path("llmflow-out"), "choose another folder with --out")
    if max_cost is not None or max_cost_per_item is not None:
        client, model_id = job.gateway.resolve()
        if job.gateway.pricing.hosted_yet_free(client.provider, model_id):
            raise fail(
                f"--max-cost on {model_id!r} at {client.provider}: that endpoint is priced as "
                f"self-hosted ($0), yet {model_id!r} is the name of a hosted model, so the "
                "budget would never stop anything: set what it costs you with "
                "LLMFLOW_LOCAL_PRICE_PER_MTOK (or LLMFLOW_LOCAL_PRICE_PER_HOUR), or drop "
                "--max-cost"
            )
    budget = None
    if max_cost is not None or max_tokens is not None or max_requests is not None:
        budget = Budget(max_cost=max_cost, max_tokens=max_tokens, max_requests=max_requests)
    item_budget = None
    if max_cost_per_item is not None:
        per_item = max_cost_per_item

        def item_budget() -> Budget:
            return Budget(max_cost=per_item, scope="item", flags={"cost": "--max-cost-per-item"})

    if durable:
        from .durable import execute_durable

        batch = execute_durable(job, ref=workflow, out_dir=out_dir, budget=budget,
                                item_budget=item_budget, quiet=as_json,
                                run_id=job.snapshot)  # fmt: skip
    else:
        batch = execute(job, out_dir=out_dir, budget=budget, item_budget=item_budget,
                        quiet=as_json)  # fmt: skip
    if job.snapshot is not None and batch.status != "interrupted":
        end_snapshot(job.snapshot, batch.status, job.settings, dry_run=job.dry_run)
    if batch.status == "interrupted":
        how = "by SIGTERM" if terminated() else ""
        then = (
            f"finish it with: llmflow resume {batch.run_id}"
            if durable
            else "it ran with --no-durable, so it cannot be resumed: run it again"
        )
        err.print(
            f"[yellow]interrupted[/]{' ' + how if how else ''}: {len(batch.results)} of "
            f"{len(job.items)} items finished and are recorded in run {batch.run_id}; {then}",
            highlight=False,
            soft_wrap=True,
        )
        report(batch, job.workflow, as_json, job.summary, job.gateway.pricing, compare)
        return EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED
    if batch.status == "stopped":
        err.print(f"[bold red]stopped:[/] {batch.error}", highlight=False)
    report(batch, job.workflow, as_json, job.summary, job.gateway.pricing, compare)
    return {
        "ok": EXIT_OK,
        "partial": EXIT_PARTIAL,
        "interrupted": EXIT_INTERRUPTED,
    }.get(batch.status, EXIT_FAILED)


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


def cost_line(summary: CostSummary, compare: str, compared: Decimal | None) -> str:
    """cost $0.0000 · 1,234 tokens (1,000 in, 234 out) · 12 calls, 3 cached (25%) · on ..."""
    unknown = f" (price unknown: {', '.join(sorted(summary.unknown))})" if summary.unknown else ""
    line = (
        f"cost {format_cost(summary.cost)}{unknown} · {summary.tokens:,} tokens "
        f"({summary.input_tokens:,} in, {summary.output_tokens:,} out) · {summary.calls} calls, "
        f"{summary.cached} cached ({summary.hit_rate:.0%})"
    )
    if compared is not None:
        line += f" · on {compare} ≈ {format_cost(compared)}"
    return line


def _cell(value: str, limit: int = 160) -> str:
    """One table cell: a single line, cut at `limit` characters (the full text is in --json)."""
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report(
    batch: BatchResult,
    wf: Workflow,
    as_json: bool,
    summary: CostSummary,
    pricing: Pricing,
    compare: str,
) -> None:
    """Print a finished run: its items, its cost line and where its files are (or JSON)."""
    from ..store.sqlite import to_json

    compared = summary.on(pricing, compare)
    if as_json:
        payload = {
            "usage": {
                **usage_json(summary),
                "compare": {"model": compare, "cost_usd": usd(compared)},
            },
            "run_id": batch.run_id,
            "workflow": batch.workflow,
            "status": batch.status,
            "out_dir": str(batch.out_dir) if batch.out_dir else None,
            "artifacts": {k: str(v) for k, v in batch.artifacts.items()},
            "items": [
                {
                    "key": r.key,
                    "ok": r.ok,
                    "output": json.loads(to_json(r.output) or "null"),
                    "error": str(r.error) if r.error else None,
                }
                for r in batch.results
            ],
        }
        out.print_json(json.dumps(payload))
        return
    table = Table(title=f"{batch.workflow} · run {batch.run_id}", title_justify="left")
    table.add_column("item", no_wrap=True, overflow="ellipsis", max_width=26)
    columns = wf.columns or (lambda o: {"output": str(o)})
    first_ok = next((r for r in batch.results if r.ok), None)
    names = list(columns(first_ok.output)) if first_ok else ["result"]
    for name in names:
        table.add_column(name, overflow="fold", ratio=3 if name == names[-1] else None)
    for r in batch.results:
        if r.ok:
            cells = [_cell(v) for v in columns(r.output).values()]
        else:  # the reason goes in the widest column
            cells = [""] * (len(names) - 1) + [f"[red]failed: {r.error}[/]"]
        table.add_row(r.key if r.ok else f"[red]{r.key}[/]", *cells)
    out.print(table)
    ok = sum(r.ok for r in batch.results)
    out.print(f"{ok} ok, {len(batch.results) - ok} failed · status [bold]{batch.status}[/]")
    out.print(cost_line(summary, compare, compared), highlight=False)
    for name, path in batch.artifacts.items():
        out.print(f"{name}: {path}")
    out.print(f"details: llmflow runs show {batch.run_id}")
