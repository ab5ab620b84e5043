"""Code steps of the tasks template: read a note, then ground the model's action items.

The LLM reads a meeting note or an email and lists its action items with the owner and the
due date *as written* ("by Friday", "end of month"). Code does the rest, where code is right
and a model is not: it resolves each due date to a calendar date relative to the note's own
date, and keeps an owner only if the name occurs in the note (a small model invents names).
The workflow's report templates then write the task list as Markdown and JSON.
"""

# No `from __future__ import annotations`: pydantic resolves these models' annotations at
# class creation, and this file may be loaded by path, outside sys.modules.
import calendar
import re
from datetime import date, datetime, timedelta
from typing import Any

from dateutil import parser as date_parser
from pydantic import BaseModel, Field

from llmflow import InputError


class Note(BaseModel):
    """A meeting note or an email, as text, with the date it was written."""

    written_on: str | None = None
    """The day it was written (ISO 8601), from a `Date:` line at the top; due dates like
    "Friday" are relative to it. Text, not a date, so that it is a plain JSON value wherever
    the run records it."""
    text: str


class ActionItem(BaseModel):
    """One action item as the model extracts it."""

    task: str = Field(max_length=160, description="What must be done, as a short imperative.")
    owner: str | None = Field(
        default=None, max_length=40, description="Who does it, as named in the text, or null."
    )
    due: str | None = Field(
        default=None, max_length=40, description="By when, as written in the text, or null."
    )


class ActionItems(BaseModel):
    """The model's output: the note's action items."""

    items: list[ActionItem] = Field(max_length=8)


class Task(BaseModel):
    """One task of the final list."""

    task: str
    owner: str | None
    """As named in the note; None when the model named nobody the note mentions."""
    due: str | None
    """The due date as written."""
    due_date: str | None
    """`due` resolved to a date (ISO 8601), when it names one."""


DATE_LINE = re.compile(r"^\s*date:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
MAX_NOTE_CHARS = 4000
"""A longer note is cut: the embedded model's context is small."""


def parse_note(text: str) -> Note:
    """A note's text, and its date from a `Date:` line near the top, if there is one."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("the note is empty: give a text or Markdown file with the notes")
    written_on = None
    line = DATE_LINE.search(text[:500])
    if line:
        try:
            written_on = date_parser.parse(line.group(1), fuzzy=True).date().isoformat()
        except (ValueError, OverflowError):
            written_on = None
    return Note(written_on=written_on, text=text.strip()[:MAX_NOTE_CHARS])


WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
WEEKDAYS.update({name.lower(): i for i, name in enumerate(calendar.day_abbr)})
LEAD_WORDS = re.compile(r"^(?:by|before|on|until|till|no later than|due)\s+", re.IGNORECASE)


def resolve_due(due: str | None, written_on: date | None) -> date | None:
    """The date meant by `due` ("Friday", "tomorrow", "2 December", "end of month"),
    relative to the day the note was written. None when it names no date."""
    if not due or not due.strip():
        return None
    text = LEAD_WORDS.sub("", due.strip().lower()).strip(" .")
    today = written_on or date.today()
    if text in ("today", "tonight", "eod", "end of day"):
        return today
    if text == "tomorrow":
        return today + timedelta(days=1)
    if re.fullmatch(r"(?:the )?end of (?:the |this )?week", text):
        return today + timedelta(days=(4 - today.weekday()) % 7)  # Friday
    if text == "next week":
        return today + timedelta(days=7 - today.weekday())  # next Monday
    if re.fullmatch(r"(?:the )?end of (?:the |this )?month", text):
        return today.replace(day=calendar.monthrange(today.year, today.month)[1])
    weekday = re.fullmatch(r"(?:(next|this) )?([a-z]+)", text)
    if weekday and weekday.group(2) in WEEKDAYS:
        ahead = (WEEKDAYS[weekday.group(2)] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead + (7 if weekday.group(1) == "next" else 0))
    if not re.search(r"\d", text):
        return None  # "next quarter", "soon": no calendar date
    try:
        default = datetime(today.year, today.month, today.day)
        parsed = date_parser.parse(text, default=default).date()
    except (ValueError, OverflowError):
        return None
    if parsed < today and not re.search(r"\b\d{4}\b", text):
        parsed = parsed.replace(year=parsed.year + 1)  # "2 January" written in December
    return parsed


def grounded_owner(owner: str | None, text: str) -> str | None:
    """`owner` when its first name occurs in the note's text; else None (not invented)."""
    if not owner or not owner.strip():
        return None
    words = re.findall(r"[^\W\d_]+", owner)
    if words and re.search(rf"\b{re.escape(words[0])}\b", text, re.IGNORECASE):
        return owner.strip()
    return None


def to_tasks(payload: dict[str, Any]) -> list[Task]:
    """The model's action items (`extracted`), grounded in the `note`: owners checked, due
    dates resolved, empty and repeated tasks dropped."""
    note = Note.model_validate(payload["note"])
    extracted = ActionItems.model_validate(payload["extracted"])
    tasks: list[Task] = []
    seen: set[str] = set()
    for item in extracted.items:
        key = " ".join(item.task.lower().split())
        if not key or key in seen:
            continue
        seen.add(key)
        due = item.due.strip() if item.due and item.due.strip() else None
        written_on = date.fromisoformat(note.written_on) if note.written_on else None
        resolved = resolve_due(due, written_on)
        tasks.append(
            Task(
                task=item.task.strip(),
                owner=grounded_owner(item.owner, note.text),
                due=due,
                due_date=resolved.isoformat() if resolved else None,
            )
        )
    return tasks
