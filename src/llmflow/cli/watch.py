"""`llmflow watch`: run a workflow on a mailbox's new mail as it arrives.

Each round takes a snapshot of the messages no run took yet (`inputs.imap.take_snapshot`)
and runs the workflow on it durably, the snapshot's id as the run's; then it waits for new
mail (IMAP IDLE, or a plain wait where the server has no IDLE) and goes again. Killed at any
point and started again, it first takes up the snapshots whose run did not end: the durable
engine replays what finished (no model call or mailbox action repeated) and runs the rest.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ConfigError
from .app import EXIT_INTERRUPTED, dollars, endpoint, err, fail, out
from .signals import EXIT_TERMINATED, terminated

if TYPE_CHECKING:
    from ..inputs.imap import MailboxSource, Snapshot
    from ..settings import Settings


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)


def watch(
    workflow: Annotated[
        str,
        typer.Argument(help="The workflow (email-triage, a workflow file, a template...)."),
    ],
    source: Annotated[
        str,
        typer.Argument(
            help="The mailbox: imaps://user@host/INBOX, its password in LLMFLOW_IMAP_PASSWORD."
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
            help="An OpenAI-compatible endpoint. \\[env: OPENAI_BASE_URL]",
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Messages in flight at once.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Output folder, one subfolder per batch. \\[default: llmflow-out]"
        ),
    ] = None,
    poll: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds to wait for new mail before looking again (the IDLE timeout; the "
            "poll interval on a server without IDLE).",
        ),
    ] = 60.0,
    max_cost_per_day: Annotated[
        Decimal | None,
        typer.Option(
            callback=dollars,
            metavar="<dollars>",
            help="Spend at most this much on this mailbox per day (local time); then wait "
            "for the next day.",
        ),
    ] = None,
) -> int:
    """Process a mailbox's new mail as it arrives: each message once, durably."""
    from ..inputs.imap import check_source, is_mailbox_url, take_snapshot, unfinished_snapshots
    from ..settings import Settings

    if not is_mailbox_url(source):
        raise fail(f"{source!r} is not a mailbox: give imaps://user@host/INBOX")
    try:
        settings = Settings()
        mailbox = check_source(source, settings)
    except ConfigError as e:
        raise fail(str(e)) from None
    out.print(f"watching {mailbox.url} (Ctrl-C to stop)", highlight=False)
    uidnext = 0
    while True:
        try:
            todo = unfinished_snapshots(mailbox, settings)
            if not todo:
                snapshot = take_snapshot(mailbox, settings)
                for note in snapshot.notes:
                    err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
                uidnext = snapshot.uidnext
                todo = [snapshot] if snapshot.count else []
        except ConfigError as e:
            raise fail(str(e)) from None
        for snapshot in todo:
            budget = None
            if max_cost_per_day is not None:
                left = max_cost_per_day - _spent_today(mailbox, settings)
                if left <= 0:
                    out.print(f"the day's budget (${max_cost_per_day}) is spent: waiting")
                    time.sleep(min(poll, _seconds_to_midnight()))
                    break
                budget = left
            code = _process(workflow, snapshot, model=model, base_url=base_url,
                            concurrency=concurrency, out_dir=out_dir, max_cost=budget)  # fmt: skip
            if code is not None:
                return code
        if todo:
            continue  # more may have come meanwhile: look again before waiting
        try:
            _wait(mailbox, poll, uidnext)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED


def _wait(mailbox: MailboxSource, poll: float, uidnext: int) -> None:
    from ..inputs.imap import wait_for_mail

    try:
        wait_for_mail(mailbox, poll, uidnext)
    except (ConfigError, OSError) as e:  # the server went away: look again after a pause
        err.print(f"[yellow]waiting for mail failed:[/] {e}; trying again", highlight=False)
        time.sleep(poll)


def _process(
    workflow: str,
    snapshot: Snapshot,
    *,
    model: str | None,
    base_url: str | None,
    concurrency: int | None,
    out_dir: Path | None,
    max_cost: Decimal | None,
) -> int | None:
    """Run (or take up) the run of one snapshot; an exit code when watching must stop."""
    from ..inputs.imap import finish_snapshot
    from ..models.budget import Budget
    from .durable import execute_durable
    from .run import prepare

    job = prepare(workflow, snapshot.path, model=model, base_url=base_url,
                  concurrency=concurrency, cache=True)  # fmt: skip
    job.snapshot = snapshot.id
    target = (out_dir or Path("llmflow-out") / job.workflow.name) / snapshot.id
    budget = Budget(max_cost=max_cost) if max_cost is not None else None
    batch = execute_durable(job, ref=workflow, out_dir=target, budget=budget, quiet=True,
                            run_id=snapshot.id)  # fmt: skip
    if batch.status == "interrupted":
        err.print(
            f"[yellow]interrupted[/]: run {batch.run_id} is taken up by the next "
            "`llmflow watch` on this mailbox (or `llmflow resume`)",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED
    finish_snapshot(snapshot.id, batch.status, job.settings)
    ok = sum(r.ok for r in batch.results)
    stamp = datetime.now().strftime("%H:%M:%S")
    out.print(
        f"{stamp} run {batch.run_id}: {len(batch.results)} message(s), {ok} ok, "
        f"{len(batch.results) - ok} failed · {target}",
        highlight=False,
    )
    if batch.status == "stopped":
        err.print(f"[bold red]stopped:[/] {batch.error}", highlight=False)
    return None


def _spent_today(mailbox: MailboxSource, settings: Settings) -> Decimal:
    """What the runs of this mailbox's snapshots taken today cost."""
    from ..analysis.costs import summarise
    from ..inputs.imap import ledger
    from ..store.sqlite import RunStore

    midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    with ledger(settings) as book:
        ids = book.taken_since(mailbox.account, mailbox.mailbox, midnight)
    store = RunStore(settings.db_path)
    try:
        # A price unknown counts as nothing: the run's own budget refuses unpriced models.
        costs = (summarise(store.call_costs(i)).cost for i in ids)
        return sum((c for c in costs if c is not None), Decimal(0))
    finally:
        store.close()


def _seconds_to_midnight() -> float:
    now = datetime.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86400
    return max(1.0, midnight - now.timestamp())
