"""Real mailboxes over IMAP: read new messages into a batch, and act on them in the mailbox.

A source is a URL, `imaps://user@host[:port]/MAILBOX?unseen=1&since=2026-12-01` (`imap://`
is STARTTLS on port 143); the password or app password comes from `LLMFLOW_IMAP_PASSWORD`
(the environment or `.env`) and is never stored. TLS certificates are verified unless the URL
says `insecure=1` (a test server with a self-signed certificate).

This module is the front door; the work is done by modules of one job each:

- `mailbox_source`: the source URL, parsed and checked; a message's id on its server;
- `imap_connection`: one logged-in connection, and the errors that name the fix;
- `mail_snapshots`: the ledger of messages taken, and the snapshot folders runs read;
- `mailbox_actions`: flags, drafts, copies and moves on the server, each done once;
- `imap_watch`: waiting for new mail (IDLE, else polling), for `llmflow watch`.

Sending a reply is `smtp`, and only after a person approved it.
"""

from __future__ import annotations

from ..settings import Settings
from .imap_connection import Mailbox, open_mailbox, password
from .imap_watch import wait_for_mail, wait_for_new_mail
from .mail_snapshots import (
    MANIFEST,
    Ledger,
    RunOptions,
    Snapshot,
    finish_snapshot,
    ledger,
    release_snapshot,
    run_options,
    set_run_options,
    snapshot_message,
    take_snapshot,
    unfinished_snapshots,
)
from .mailbox_actions import (
    KEY_HEADER,
    MessageActions,
    act_in_mailbox,
    draft_message_id,
    folder_name,
    reply_message,
    triage_folder,
)
from .mailbox_source import (
    APP_PASSWORDS,
    PASSWORD_VAR,
    PORTS,
    Filing,
    MailboxRef,
    MailboxSource,
    is_mailbox_url,
    parse_source,
)

__all__ = [
    "APP_PASSWORDS",
    "KEY_HEADER",
    "MANIFEST",
    "PASSWORD_VAR",
    "PORTS",
    "Filing",
    "Ledger",
    "Mailbox",
    "MailboxRef",
    "MailboxSource",
    "MessageActions",
    "RunOptions",
    "Snapshot",
    "act_in_mailbox",
    "check_source",
    "draft_message_id",
    "finish_snapshot",
    "folder_name",
    "is_mailbox_url",
    "ledger",
    "open_mailbox",
    "parse_source",
    "password",
    "release_snapshot",
    "reply_message",
    "run_options",
    "set_run_options",
    "snapshot_message",
    "take_snapshot",
    "triage_folder",
    "unfinished_snapshots",
    "wait_for_mail",
    "wait_for_new_mail",
]


def check_source(url: str, settings: Settings | None = None) -> MailboxSource:
    """Parse and connect once (login and mailbox checked): errors before any work starts."""
    source = parse_source(url)
    with open_mailbox(source, settings) as box:
        box.select(source.mailbox, readonly=True)
    return source
