"""Reading mail: a folder of .eml files or an mbox into items, and one message into an `Email`.

Parsing is plain code (stdlib `email`): headers, the text of plain or HTML parts, attachments
listed. A file that is not an email raises `InputError` naming the file.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

from pydantic import BaseModel, Field

from ..errors import InputError
from ..runtime.runner import Item

EXCERPT_CHARS = 1500
"""How much of the newest message text goes into prompts (small models have small contexts)."""


class RawEmail(BaseModel):
    """An email's bytes and where they came from."""

    source: str
    """File name, or `mbox-file#n` for the n-th message of an mbox."""
    data: bytes = Field(repr=False)


class Attachment(BaseModel):
    filename: str
    content_type: str
    size: int
    """Decoded size in bytes."""


class Email(BaseModel):
    """A parsed email."""

    source: str
    """Where it came from (file name or `mbox#n`)."""
    message_id: str | None = None
    sender: str
    """The From header, decoded."""
    to: list[str] = Field(default_factory=list)
    subject: str
    date: str | None = None
    """ISO 8601, when the Date header parses."""
    body: str
    """The text: the plain part, else the HTML part as text."""
    excerpt: str
    """The newest message (quoted replies removed), cut to a prompt-friendly length."""
    attachments: list[Attachment] = Field(default_factory=list)
    raw: bytes = Field(default=b"", exclude=True, repr=False)
    """The original bytes (for filing), not recorded."""


class _HTMLText(HTMLParser):
    """HTML to plain text: keeps text, breaks lines at blocks, drops scripts and styles."""

    BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "ul"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "head"}:
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head"}:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return _tidy("".join(parser.parts))


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def newest_message(body: str) -> str:
    """The text above the first quoted reply ('On ... wrote:' or '>' lines)."""
    kept = []
    for line in body.splitlines():
        if line.startswith(">") or re.match(
            r"^(On|Am|El|Le) .{5,200}(wrote|schrieb|escribió|écrit)", line
        ):
            break
        if re.match(r"^-{2,}\s*(Original Message|Forwarded message)", line, re.IGNORECASE):
            break
        kept.append(line)
    return "\n".join(kept).strip() or body


def parse_email(raw: RawEmail | Path) -> Email:
    """Parse one message. Raises `InputError` (naming the source) if it is not an email."""
    if isinstance(raw, Path):
        try:
            raw = RawEmail(source=raw.name, data=raw.read_bytes())
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror}", source=str(raw)) from e
    if b"\x00" in raw.data:
        raise InputError("not an email: the file holds binary data (NUL bytes)", source=raw.source)
    msg = email.message_from_bytes(raw.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    sender = str(msg.get("From", "") or "").strip()
    subject = str(msg.get("Subject", "") or "").strip()
    if not sender and not subject:
        raise InputError("not an email: no From or Subject header", source=raw.source)
    plain, html, attachments = _walk(msg)
    body = _tidy(plain) if plain.strip() else html_to_text(html)
    if not body and not subject:
        raise InputError("not an email: no subject and no text", source=raw.source)
    return Email(
        source=raw.source,
        message_id=str(msg.get("Message-ID") or "") or None,
        sender=sender or "(unknown sender)",
        to=[addr for _, addr in getaddresses([str(v) for v in msg.get_all("To", [])]) if addr],
        subject=subject or "(no subject)",
        date=_iso_date(msg.get("Date")),
        body=body,
        excerpt=newest_message(body)[:EXCERPT_CHARS],
        attachments=attachments,
        raw=raw.data,
    )


def _walk(msg: EmailMessage) -> tuple[str, str, list[Attachment]]:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        ctype = part.get_content_type()
        if filename or part.get_content_disposition() == "attachment":
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else 0
            attachments.append(
                Attachment(filename=filename or "(unnamed)", content_type=ctype, size=size)
            )
        elif ctype in ("text/plain", "text/html"):
            try:
                text = part.get_content()
            except (LookupError, UnicodeDecodeError):  # unknown charset: decode leniently
                payload = part.get_payload(decode=True)
                text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            (plain if ctype == "text/plain" else html).append(str(text))
    return "\n".join(plain), "\n".join(html), attachments


def _iso_date(value: object) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value)).isoformat()
    except (TypeError, ValueError):
        return None


def load_inbox(path: Path) -> list[Item]:
    """Items from a folder of .eml files (sorted by name), one .eml file, or an mbox file."""
    if not path.exists():
        raise InputError("no such file or folder", source=str(path))
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".eml" and p.is_file())
        if not files:
            raise InputError("no .eml files in this folder", source=str(path))
        return [Item(key=p.name, value=p) for p in files]
    if path.suffix.lower() == ".eml":
        return [Item(key=path.name, value=path)]
    try:
        with path.open("rb") as f:
            head = f.read(5)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", source=str(path)) from e
    if head != b"From ":
        raise InputError(
            "not a folder of .eml files, an .eml file or an mbox (an mbox starts with 'From ')",
            source=str(path),
        )
    box = mailbox.mbox(path, create=False)
    try:
        return [
            Item(
                key=f"{path.name}#{n}",
                value=RawEmail(source=f"{path.name}#{n}", data=box.get_bytes(key)),
            )
            for n, key in enumerate(box.keys(), start=1)
        ]
    finally:
        box.close()
