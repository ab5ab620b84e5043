"""`llmflow run` on a mailbox: the snapshot a run reads, what the run may do beyond reading
(`--send-replies`, `--dry-run`), and what happens to the snapshot when the run ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .app import err

if TYPE_CHECKING:  # the work loads when a command runs, so that `llmflow --help` starts fast
    from ..inputs.imap import RunOptions, Snapshot
    from ..settings import Settings


def mail_options(send_replies: str | None, *, dry_run: bool, durable: bool) -> RunOptions:
    """What a run on a mailbox may do, checked before any work starts: the SMTP server's
    URL, login and TLS (also in a dry run, which shows what would be sent there)."""
    from ..inputs.imap import RunOptions

    if send_replies is None:
        return RunOptions(dry_run=dry_run)
    if not durable:
        raise ConfigError(
            "--send-replies waits for a person to approve each reply, which needs a durable "
            "run: drop --no-durable (and LLMFLOW_DURABLE=0)"
        )
    from ..inputs.smtp import check_target

    target = check_target(send_replies)
    return RunOptions(send=target.url, dry_run=dry_run)


def mailbox_snapshot(
    url: str, settings: Settings, options: RunOptions | None = None
) -> tuple[Snapshot, str]:
    """The messages of a mailbox that no run took yet, fetched into a snapshot folder (or
    those a run fetched and never started on), with what its run may do (`options`); says
    what the user should know."""
    from ..inputs.imap import parse_source, set_run_options, take_snapshot, unfinished_snapshots
    from ..store.sqlite import RunStore

    source = parse_source(url)
    store = RunStore(settings.db_path)
    try:
        waiting = []
        for snap in unfinished_snapshots(source, settings):
            if not store.has_run(snap.id):
                waiting.append(snap)
            elif store.find_run(snap.id)["status"] not in (None, "running", "interrupted"):
                end_snapshot(snap.id, str(store.find_run(snap.id)["status"]), settings)
            else:
                err.print(
                    f"run {snap.id} holds {snap.count} message(s) of {source.url} and was "
                    f"interrupted: finish it with: llmflow resume {snap.id}",
                    highlight=False,
                    soft_wrap=True,
                )
    finally:
        store.close()
    snapshot = waiting[0] if waiting else take_snapshot(source, settings)
    if snapshot.count and options is not None:
        set_run_options(snapshot, options)
    for note in snapshot.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    return snapshot, source.url


def end_snapshot(
    snapshot_id: str, status: str, settings: Settings, *, dry_run: bool | None = None
) -> None:
    """The run of a snapshot ended: its messages are processed, or, after a dry run, free
    for the next run to take."""
    from ..inputs.imap import finish_snapshot, release_snapshot, run_options

    if dry_run is None:
        dry_run = run_options(snapshot_id, settings).dry_run
    if dry_run:
        release_snapshot(snapshot_id, settings)
        err.print(
            "dry run: nothing changed on the mail servers; the next run takes these messages again",
            highlight=False,
            soft_wrap=True,
        )
    else:
        finish_snapshot(snapshot_id, status, settings)
