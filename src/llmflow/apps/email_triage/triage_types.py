"""What email triage makes of one email: the `Triage` record each step adds to (its
`Classification`, `Extraction`, summary, reply, and who answered each field)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ...inputs.email import Email

Category = Literal["billing", "support", "sales", "internal", "spam"]
Priority = Literal["urgent", "high", "normal", "low"]
PRIORITY_ORDER: dict[str, int] = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


class Classification(BaseModel):
    category: Category
    priority: Priority
    answered_by: dict[str, str] = Field(default_factory=dict)
    """Which cascade tier gave each label, e.g. {"category": "ml", "priority": "llm"}."""


# Bounded lengths keep a small model from rambling inside a string until max_tokens.
ShortId = Annotated[str, Field(max_length=24)]


class Extraction(BaseModel):
    request: str = Field(max_length=200)
    """What the sender wants, in one sentence; empty when no checked answer was found."""
    deadline: str | None = Field(max_length=60)
    """By when: from the model, as written; after the checks, an ISO date stated in the
    mail, or None."""
    order_numbers: list[ShortId] = Field(max_length=4)
    invoice_numbers: list[ShortId] = Field(max_length=4)
    needs_reply: bool


class Triage(BaseModel):
    """One email's triage, built up step by step."""

    email: Email
    classification: Classification | None = None
    extraction: Extraction | None = None
    summary: str | None = None
    reply: str | None = None
    amounts: list[str] = Field(default_factory=list)
    """Money amounts in the mail, by code ("4820.00 USD")."""
    tiers: dict[str, str] = Field(default_factory=dict)
    """Who answered each field: "llm", "code" (rules, extractive text, a template), or
    "headers" (a mail filed by code)."""
    rejected: dict[str, str] = Field(default_factory=dict)
    """Model answers refused by the checks, per field, and why (never shown as facts)."""
    filed_as: str | None = None
    """Where `act` filed the message, relative to the run's output folder."""
    mailbox_message: str | None = None
    """The message's id on its IMAP server (server, mailbox, UIDVALIDITY, UID), when read
    from one."""
    mailbox_actions: list[str] = Field(default_factory=list)
    """What `act` did on the IMAP server (flags, a draft saved, a move) and what `send` did
    with the reply (sent after approval, or why not), one line each."""
    reply_message_id: str | None = None
    """The Message-ID of the drafted reply (in Drafts, and when sent), on a mailbox."""
