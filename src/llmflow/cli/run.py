"""`llmflow run`: run a workflow on a batch of inputs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from ..models.budget import Budget
from ..models.client import Usage
from .app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    dollars,
    endpoint,
    err,
    fail,
    writable_folder,
)
from .mailboxes import end_snapshot
from .run_job import Job as Job
from .run_job import execute as execute
from .run_job import prepare as prepare
from .run_report import cost_line as cost_line
from .run_report import report as report
from .signals import EXIT_TERMINATED, terminated


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
    if job.gateway.pricing.cost_of(compare, Usage()) is None:  # else the line goes missing
        raise fail(
            f"--compare {compare}: no known price for it: name a hosted model, e.g. "
            "openai:gpt-4.1 (the default is openai:gpt-4.1-mini)"
        )
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
        if durable:
            from .durable import budget_hint

            budget_hint(batch, batch.run_id)
    report(batch, job.workflow, as_json, job.summary, job.gateway.pricing, compare)
    return {
        "ok": EXIT_OK,
        "partial": EXIT_PARTIAL,
        "interrupted": EXIT_INTERRUPTED,
    }.get(batch.status, EXIT_FAILED)
