"""Acting on a message in its mailbox: set flags and keywords, save a drafted reply in the
Drafts folder threaded to the original, copy or move the message to a folder (created when
missing).

Each action checks the server first (the draft carries its key in `X-Llmflow-Key`; a copy or
move looks for the Message-ID in the target), so an action run again after a crash changes
nothing twice. Nothing is sent from here: sending is `inputs.smtp`, only after approval.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

from pydantic import BaseModel, Field

from ..settings import Settings
from .email import Email
from .imap_connection import Mailbox, imap_quote, open_mailbox
from .mailbox_source import MailboxRef, parse_source

KEY_HEADER = "X-Llmflow-Key"
"""The header a saved draft carries its idempotency key in."""
WIRE = email.policy.SMTP.clone(max_line_length=998)
"""How a reply is written out (CRLF): headers folded only past RFC 5322's hard limit. At 78,
Python folds a long `Subject` before its first word, and readers then see it start with a
space."""


class MessageActions(BaseModel):
    """What to do with one message on its server (in this order)."""

    flags: list[str] = Field(default_factory=list)
    """Flags and keywords to add, e.g. `\\Flagged`, `$llmflow-billing`."""
    draft: str | None = None
    """A reply's text, saved in the Drafts folder threaded to the message (never sent)."""
    copy_to: str | None = None
    """A folder to copy the message to (created when missing); `/` separates levels."""
    move_to: str | None = None
    """A folder to move the message to (created when missing); `/` separates levels."""


def folder_name(box: Mailbox, path: str) -> str:
    """A folder path written with `/` in the server's hierarchy delimiter."""
    return box.delimiter().join(p.strip() for p in path.split("/") if p.strip())


_MESSAGE_ID = re.compile(r"<[!-;=?-~]+>|^[!-;=?-~]+$")
"""A Message-ID: its first `<...>` of printable ASCII (no space, CR or LF), else one bare
token."""


def checked(original: Email) -> Email:
    """`original` with the header values that go into IMAP commands and the reply's headers
    made safe: a mail's headers are written by anyone, and a decoded one can hold anything.
    The Message-ID is its `<id@host>` alone (not what follows it: a comment, or CR LF and an
    IMAP command from an encoded word), or None when it has none; the subject is one line."""
    found = _MESSAGE_ID.search((original.message_id or "").strip())
    return original.model_copy(
        update={
            "message_id": found.group() if found else None,
            "subject": " ".join(original.subject.split()),
        }
    )


def draft_message_id(key: str) -> str:
    """The Message-ID of the reply drafted under idempotency key `key`: the same draft is
    the same message, in Drafts and when it is sent."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@llmflow.invalid>"


def reply_message(
    original: Email, raw: bytes, text: str, *, sender: str | None, message_id: str
) -> EmailMessage:
    """A reply to `original` (`raw`: its bytes, for References) threaded to it, addressed to
    its Reply-To when it has one: In-Reply-To, References, Re: subject; `message_id` from
    `draft_message_id`."""
    original = checked(original)
    headers = email.message_from_bytes(raw[:65536], policy=email.policy.default)
    references = " ".join(str(headers.get("References") or "").split())
    msg = EmailMessage(policy=WIRE)
    if sender:
        msg["From"] = sender
    to = original.reply_to or original.sender
    addresses = [a for _, a in getaddresses([to]) if a]
    msg["To"] = ", ".join(addresses) or " ".join(to.split())
    subject = original.subject
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    if original.message_id:
        msg["In-Reply-To"] = original.message_id
        msg["References"] = " ".join(x for x in (references, original.message_id) if x)
    msg["Message-ID"] = message_id
    msg["Date"] = formatdate(localtime=True)
    msg[KEY_HEADER] = message_id.strip("<>").split("@")[0]
    msg.set_content(text)
    return msg


def act_in_mailbox(
    original: Email,
    actions: MessageActions,
    *,
    ref: MailboxRef,
    raw: bytes,
    key: str,
    settings: Settings | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Carry out `actions` on the message's server; returns what was done, one line each
    (with `dry_run`, what would be done: the server is only read).

    Safe to run again with the same `key` (after a crash mid-way): flags are set, not
    toggled; a draft whose key is already in Drafts is not saved again; a copy or move whose
    Message-ID is already in the target is not made again.
    """
    source = parse_source(ref.url, ref.user)
    original = checked(original)
    done: list[str] = []
    with open_mailbox(source, settings) as box:
        if dry_run:
            return _plan(box, original, actions, ref)
        uid = box.locate(ref, original.message_id)
        if actions.flags and uid is not None:
            flags = " ".join(actions.flags)
            box.check("STORE", box.conn.uid("STORE", str(uid), "+FLAGS", f"({flags})"))
            done.append(f"flagged {flags}")
        if actions.draft is not None:
            drafts = box.special("\\Drafts", "Drafts")
            box.ensure_folder(drafts)
            message = reply_message(
                original,
                raw,
                actions.draft,
                sender=source.from_address(),
                message_id=draft_message_id(key),
            )
            if box.find(drafts, KEY_HEADER, str(message[KEY_HEADER])):
                done.append(f"draft already in {drafts}")
            else:
                data = message.as_bytes(policy=WIRE)
                appended = box.conn.append(imap_quote(drafts), "(\\Draft \\Seen)", None, data)
                box.check("APPEND", appended)
                done.append(f"drafted a reply in {drafts}")
            uid = box.locate(ref, original.message_id)
        for target, move in ((actions.copy_to, False), (actions.move_to, True)):
            if target is None:
                continue
            target = folder_name(box, target)
            box.ensure_folder(target)
            if original.message_id and box.find(target, "Message-ID", original.message_id):
                done.append(f"already in {target}")
                uid = box.locate(ref, original.message_id) if not move else None
                continue
            uid = box.locate(ref, original.message_id)
            if uid is None:
                done.append(f"not in {ref.mailbox} any more: not {'moved' if move else 'copied'}")
                continue
            if move and "MOVE" in box.conn.capabilities:
                box.check("MOVE", box.conn.uid("MOVE", str(uid), imap_quote(target)))
            else:
                box.check("COPY", box.conn.uid("COPY", str(uid), imap_quote(target)))
                if move:  # expunge this message only (UIDPLUS), never others marked deleted
                    box.check("STORE", box.conn.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)"))
                    if "UIDPLUS" in box.conn.capabilities:
                        box.check("EXPUNGE", box.conn.uid("EXPUNGE", str(uid)))
            done.append(f"{'moved' if move else 'copied'} to {target}")
        if uid is None and not done:
            done.append(f"not in {ref.mailbox} any more")
    return done


def _plan(box: Mailbox, original: Email, actions: MessageActions, ref: MailboxRef) -> list[str]:
    """What `act_in_mailbox` would do, for a dry run: nothing on the server changes."""
    original = checked(original)
    if box.locate(ref, original.message_id) is None:
        return [f"would do nothing: not in {ref.mailbox} any more"]
    plan = [f"would flag {' '.join(actions.flags)}"] if actions.flags else []
    if actions.draft is not None:
        drafts = box.special("\\Drafts", "Drafts")
        plan.append(f"would draft a reply in {drafts}")
    for target, verb in ((actions.copy_to, "copy"), (actions.move_to, "move")):
        if target is not None:
            plan.append(f"would {verb} to {folder_name(box, target)}")
    return plan


def triage_folder(ref: MailboxRef, category: str) -> tuple[str | None, str | None]:
    """(copy_to, move_to) for a triaged message, from the source's `file=` and `folder=`."""
    source = parse_source(ref.url, ref.user)
    if source.file == "none":
        return None, None
    target = f"{source.folder}/{category.capitalize()}"
    return (target, None) if source.file == "copy" else (None, target)
