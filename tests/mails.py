"""Mails built in code for the reader and triage tests: a message with the headers a test
varies, and that message parsed as the triage reads it."""

from __future__ import annotations

from email.message import EmailMessage

from llmflow.apps.email_triage import parse_email
from llmflow.inputs.email import Email, RawEmail

SUPPORT = "support@northwind-outfitters.example"


def message(
    body: str,
    *,
    sender: str,
    subject: str,
    date: str | None = None,
    to: str | None = SUPPORT,
    subtype: str = "plain",
) -> EmailMessage:
    """A one-part mail (`subtype` "html" for an HTML-only one); headers left None are absent."""
    msg = EmailMessage()
    msg["From"] = sender
    if to is not None:
        msg["To"] = to
    msg["Subject"] = subject
    if date is not None:
        msg["Date"] = date
    msg.set_content(body, subtype=subtype)
    return msg


def parsed(msg: EmailMessage, source: str = "t.eml") -> Email:
    """`msg` as the reader gives it to the triage."""
    return parse_email(RawEmail(source=source, data=msg.as_bytes()))
