"""Code steps of the email-digest template: read the day's inbox, plan one summary per
email, and rank the summaries by priority.

The whole inbox is one item (`input: {type: value}`: the command-line argument is the
folder), so the digest can weigh every email against the others. The summaries run in
parallel as an orchestrate step whose planner is code: one subtask per email, no model call.
"""

# No `from __future__ import annotations`: pydantic resolves these models' annotations at
# class creation, and this file may be loaded by path, outside sys.modules.
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmflow import InputError, Plan, Subtask
from llmflow.inputs.email import load_inbox, parse_email

MAX_EMAILS = 40
"""One digest covers at most this many emails: a day's inbox, not an archive."""
EXCERPT_CHARS = 600
"""How much of each email its summariser sees (the subtask's instructions hold at most 600)."""
TITLE_CHARS = 120
"""A subtask's title holds at most 120 characters."""
PRIORITIES = ("urgent", "high", "normal", "low")


class Mail(BaseModel):
    """One email of the inbox, as the digest needs it."""

    source: str
    sender: str
    subject: str
    text: str
    """Sender, subject and the newest message, cut to fit a subtask."""


class Inbox(BaseModel):
    """The day's emails, and the files that could not be read."""

    emails: list[Mail]
    unreadable: list[str]
    """`file: reason` for each file that is not an email."""


def read_inbox(path: str) -> Inbox:
    """Every email in a folder of .eml files (or an mbox). Unreadable files are listed,
    not fatal."""
    folder = Path(str(path).strip())
    items = load_inbox(folder)  # InputError naming the path when it is no inbox
    if len(items) > MAX_EMAILS:
        raise InputError(
            f"{len(items)} emails is more than one digest covers ({MAX_EMAILS}): split the inbox",
            source=str(folder),
        )
    emails: list[Mail] = []
    unreadable: list[str] = []
    for item in items:
        try:
            email = parse_email(item.value)
        except InputError as e:
            unreadable.append(f"{item.key}: {e}")
            continue
        name = parseaddr(email.sender)[0] or email.sender
        text = f"From: {email.sender}\nSubject: {email.subject}\n\n{email.excerpt}"
        emails.append(
            Mail(
                source=item.key,
                sender=name,
                subject=email.subject,
                text=_cut(text, EXCERPT_CHARS),
            )
        )
    if not emails:
        raise InputError("no readable email in this inbox", source=str(folder))
    return Inbox(emails=emails, unreadable=unreadable)


def one_subtask_per_email(inbox: Any) -> Plan:
    """The plan: summarise each email (code plans it; no model call needed)."""
    mails = Inbox.model_validate(inbox).emails
    return Plan(
        subtasks=[
            Subtask(title=_cut(f"{m.sender}: {m.subject}", TITLE_CHARS), instructions=m.text)
            for m in mails
        ]
    )


class Ranked(BaseModel):
    """One email in the digest."""

    title: str
    """`sender: subject`."""
    priority: str
    """urgent, high, normal or low; `unknown` when its summary failed."""
    summary: str


def rank(results: list[Any]) -> list[Ranked]:
    """The workers' summaries, most urgent first (in inbox order within a priority); a
    failed summary is kept, last, with its error."""
    ranked: list[Ranked] = []
    for result in results:
        title = str(_get(_get(result, "task"), "title"))
        output, error = _get(result, "output"), _get(result, "error")
        if error or output is None:
            ranked.append(Ranked(title=title, priority="unknown", summary=f"(failed: {error})"))
            continue
        priority = str(_get(output, "priority"))
        ranked.append(
            Ranked(
                title=title,
                priority=priority if priority in PRIORITIES else "unknown",
                summary=" ".join(str(_get(output, "summary") or "").split()),
            )
        )
    order = {p: i for i, p in enumerate(PRIORITIES)}
    return sorted(ranked, key=lambda r: order.get(r.priority, len(PRIORITIES)))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _get(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)
