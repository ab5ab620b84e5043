"""Reading mail: a folder of .eml files or an mbox into items, and one message into an `Email`.

Parsing is plain code (stdlib `email`): headers, the text of plain or HTML parts in any
transfer encoding and charset, attachments listed. What code can tell from the headers and the
structure it tells: auto-replies and bulk mail (`kind`), a forwarded message (analysed on the
forwarded mail, not the wrapper), an empty mail (a valid item, `kind="empty"`). A long message
keeps its head and its tail in the excerpt (the request is often at the end). A file that is
not an email raises `InputError` naming the file.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ..errors import InputError
from ..runtime.runner import Item
from ..untrusted import one_line

EXCERPT_CHARS = 1500
"""How much of the newest message text goes into prompts (small models have small contexts):
a longer message keeps its head and its tail, with a marked gap between them."""
GAP = "\n[…]\n"
"""What marks the cut in a long message's excerpt."""

Kind = Literal["message", "auto-reply", "bulk", "empty"]
"""What the headers and structure say a mail is: code files the last three without a model."""


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


class Forwarded(BaseModel):
    """The message a forward carries (a message/rfc822 part), as its own headers say."""

    sender: str
    subject: str
    date: str | None = None


class Email(BaseModel):
    """A parsed email."""

    source: str
    """Where it came from (file name or `mbox#n`)."""
    message_id: str | None = None
    sender: str
    """The From header, decoded."""
    to: list[str] = Field(default_factory=list)
    reply_to: str | None = None
    """The Reply-To header, decoded, when the mail has one: where a reply goes (a web form
    sends from noreply@ with the customer as Reply-To)."""
    subject: str
    date: str | None = None
    """ISO 8601, when the Date header parses."""
    body: str
    """The text: the plain part, else the HTML part as text."""
    excerpt: str
    """The newest message (quoted replies and signature removed; for a forward, the forwarded
    message), its head and tail kept within `EXCERPT_CHARS`."""
    attachments: list[Attachment] = Field(default_factory=list)
    kind: Kind = "message"
    """"auto-reply" and "bulk" from the headers, "empty" for a mail with no text: filed by
    code, never sent to a model, never replied to."""
    kind_reason: str | None = None
    """The header or fact that set `kind`, e.g. "Auto-Submitted: auto-replied"."""
    forwarded: Forwarded | None = None
    """The forwarded message's headers, when this mail forwards one as an attachment."""
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
        elif tag == "blockquote":
            self.parts.append(_QUOTE_IN)
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag in {"td", "th"}:
            self.parts.append("\t")  # a table's cells apart ("Total", "$8,485.00"), not glued

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head"}:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self.parts.append(_QUOTE_OUT)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_QUOTE_IN, _QUOTE_OUT = "\x01", "\x02"


def html_to_text(html: str) -> str:
    """The text of an HTML mail; a <blockquote> (a quoted message) becomes '> ' lines, as
    a plain-text mail quotes, so the newest message is told from the quoted one."""
    parser = _HTMLText()
    parser.feed(html.replace(_QUOTE_IN, "").replace(_QUOTE_OUT, ""))
    parser.close()
    out: list[str] = []
    depth = 0
    for piece in re.split(f"([{_QUOTE_IN}{_QUOTE_OUT}])", "".join(parser.parts)):
        if piece in (_QUOTE_IN, _QUOTE_OUT):
            depth = depth + 1 if piece == _QUOTE_IN else max(0, depth - 1)
            out.append("\n")
        elif depth:
            out.append("\n".join("> " + line for line in piece.split("\n")))
        else:
            out.append(piece)
    return _tidy("".join(out))


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_QUOTE_HEAD = re.compile(
    r"^(On|Am|El|Le|Il|Op|Em) .{5,200}"
    r"(wrote|schrieb|escribió|écrit|scritto|geschreven|schreef|escreveu)",
)
_FORWARD = re.compile(r"^-{2,}\s*(Original Message|Forwarded message|Weitergeleitete)", re.I)
_HEADER_LINE = re.compile(
    r"^\*?(From|To|Cc|Date|Sent|Subject|Von|An|Datum|Gesendet|Betreff|De|À|Objet|Envoyé|"
    r"Para|Asunto|Enviado|Fecha|Van|Aan|Onderwerp|Verzonden|Da|A|Oggetto|Inviato|Data)\s?:"
)
_BLOCK_FROM = re.compile(r"^\*?(From|Von|De|Van|Da|Fra|Från)\s?:\*?\s")
_BLOCK_SENT = re.compile(
    r"^\*?(Sent|Date|Gesendet|Datum|Envoyé|Date d'envoi|Enviado|Fecha|Verzonden|Inviato|Data|"
    r"Enviada|Sendt|Skickat)\s?:"
)
"""A quoted message's header block as Outlook and others write it, without '>' marks:
"From: ..." and, within the next lines, "Sent: ..." (in several languages)."""


def _header_block(lines: list[str]) -> bool:
    """Whether `lines` start with a quoted message's header block (From:, then Sent:)."""
    return bool(lines and _BLOCK_FROM.match(lines[0])) and any(
        _BLOCK_SENT.match(line) for line in lines[1:5]
    )


def newest_message(body: str, *, forward: bool = False) -> str:
    """The text above the first quoted reply ('On ... wrote:', '>' lines, or an Outlook-style
    'From: / Sent:' header block), without its signature ('-- '). An inline forward with
    little or no note of its own keeps the forwarded text (its header lines dropped): that is
    the message to read; `forward` (the subject says Fwd:, FW:, WG:, TR:...) reads a header
    block as a forward's rather than a reply's quote."""
    kept: list[str] = []
    lines = body.splitlines()
    for n, line in enumerate(lines):
        if line.startswith(">") or _QUOTE_HEAD.match(line):
            break
        block = _header_block(lines[n:])
        if block and not forward and " ".join(kept).strip():
            break  # a reply's Outlook-style quote (a bare block, nothing above it, is read on)
        if line.rstrip() == "--":  # the signature delimiter ("-- ")
            break
        if _FORWARD.match(line) or (block and forward):
            if len(" ".join(kept).strip()) < 200:  # a bare forward: read the forwarded mail
                rest = lines[n if block and forward else n + 1 :]
                while rest and (_HEADER_LINE.match(rest[0]) or not rest[0].strip()):
                    rest = rest[1:]
                inner = newest_message("\n".join(rest))
                return "\n".join([*kept, "", inner]).strip() if inner else body
            break
        kept.append(line)
    return "\n".join(kept).strip() or body


_FORWARD_SUBJECT = re.compile(
    r"^\s*(fwd?|wg|tr|rv|i|enc|doorst|转发|轉寄|轉發|転送|전달)\s*[:：]", re.I
)
"""A forward's subject prefix (Fwd:, FW:, WG:, TR:, RV:, I:, ENC:, Doorst:, 转发：, 転送:...)."""


def newest_text(mail: Email) -> str:
    """The newest message of `mail` in full (the excerpt is cut to `EXCERPT_CHARS`): the
    text above its quoted replies; for a forward as an attachment, the whole text."""
    if mail.forwarded is not None:
        return mail.body
    return newest_message(mail.body, forward=bool(_FORWARD_SUBJECT.match(mail.subject)))


def head_and_tail(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` within `limit` characters: all of it, or its head and its tail cut at line or
    word boundaries with `GAP` between them (a long mail's request is often at the end)."""
    if len(text) <= limit:
        return text
    room = limit - len(GAP)
    head, tail = text[: room * 3 // 5], text[len(text) - (room - room * 3 // 5) :]
    cut = max(head.rfind("\n"), head.rfind(" "))
    head = head[:cut] if cut > len(head) // 2 else head
    cut = min((i for i in (tail.find("\n"), tail.find(" ")) if i >= 0), default=-1)
    tail = tail[cut + 1 :] if 0 <= cut < len(tail) // 2 else tail
    return head.rstrip() + GAP + tail.lstrip()


_AUTO_SUBJECT = re.compile(
    r"^(automatic reply|auto(matic)?[- ]?reply|out of (the )?office|abwesenheitsnotiz|"
    r"automatische antwort|réponse automatique|respuesta automática|absence)\b",
    re.I,
)
_HEADERS = ("from", "to", "subject", "date", "message-id", "received", "mime-version")


def mail_kind(msg: EmailMessage, subject: str) -> tuple[Kind, str | None]:
    """Auto-reply or bulk mail, from the headers (RFC 3834, RFC 2369, Precedence), or a
    plain message. `Auto-Submitted: auto-generated` (receipts, notices) stays a message: it
    may carry a charge or a chargeback that needs us."""
    auto = str(msg.get("Auto-Submitted", "") or "").strip().lower()
    if auto.startswith("auto-replied"):
        return "auto-reply", f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if value := str(msg.get(name, "") or "").strip():
            return "auto-reply", f"{name}: {value}"
    precedence = str(msg.get("Precedence", "") or "").strip().lower()
    if precedence == "auto_reply":
        return "auto-reply", "Precedence: auto_reply"
    if _AUTO_SUBJECT.match(subject) and (auto or precedence):
        return "auto-reply", f"Subject: {subject}"
    if precedence in ("bulk", "list", "junk"):
        return "bulk", f"Precedence: {precedence}"
    for name in ("List-Unsubscribe", "List-Id"):
        if msg.get(name):
            return "bulk", f"{name} header"
    return "message", None


def parse_email(raw: RawEmail | Path) -> Email:
    """Parse one message. Raises `InputError` (naming the source) if it is not an email;
    an email with no text is a valid one (`kind="empty"`)."""
    if isinstance(raw, Path):
        try:
            raw = RawEmail(source=raw.name, data=raw.read_bytes())
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror}", source=str(raw)) from e
    if b"\x00" in raw.data:
        raise InputError("not an email: the file holds binary data (NUL bytes)", source=raw.source)
    try:
        return _parse(raw)
    except RecursionError:  # a hostile mail: thousands of multiparts inside each other
        raise InputError(
            "cannot read: its MIME parts are nested too deep to walk", source=raw.source
        ) from None


def _header(msg: EmailMessage, name: str) -> str:
    """A header's text on one line. A value the parser refuses (an encoded CR LF in an
    address: a hostile mail) is read from its raw words instead, so the mail is still
    triaged rather than lost as unreadable."""
    try:
        value = str(msg.get(name, "") or "")
    except (ValueError, IndexError, TypeError):
        raw = next((str(v) for k, v in msg.raw_items() if k.lower() == name.lower()), "")
        value = str(make_header(decode_header(raw)))
    return one_line(value)


def _parse(raw: RawEmail) -> Email:
    msg = email.message_from_bytes(raw.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    sender = _header(msg, "From")
    subject = _header(msg, "Subject")
    if not any(_header(msg, h) for h in _HEADERS) or (msg.defects and not (sender or subject)):
        raise InputError("not an email: no From or Subject header", source=raw.source)
    plain, html, attachments, inner = _walk(msg)
    body = _tidy(plain) if plain.strip() else html_to_text(html)
    forward = bool(_FORWARD_SUBJECT.match(subject))
    excerpt = newest_message(body, forward=forward) if body else ""
    forwarded = None
    if inner is not None:  # a forward as an attachment: analyse the forwarded mail
        i_plain, i_html, i_attachments, _ = _walk(inner)
        i_body = _tidy(i_plain) if i_plain.strip() else html_to_text(i_html)
        forwarded = Forwarded(
            sender=_header(inner, "From") or "(unknown sender)",
            subject=_header(inner, "Subject") or "(no subject)",
            date=_iso_date(inner.get("Date")),
        )
        block = f"Forwarded message\nFrom: {forwarded.sender}\nSubject: {forwarded.subject}"
        note = excerpt if len(excerpt) < 400 else ""
        body = "\n\n".join(x for x in (body, block, i_body) if x)
        excerpt = "\n\n".join(
            x for x in (note, block, newest_message(i_body) if i_body else "") if x
        )
        attachments += i_attachments
    kind, reason = mail_kind(msg, subject)
    if kind == "message" and not body and not subject and not attachments:
        kind, reason = "empty", "no subject, no text and no attachments"
    return Email(
        source=raw.source,
        message_id=_header(msg, "Message-ID") or None,
        sender=sender or "(unknown sender)",
        to=[addr for _, addr in getaddresses([_header(msg, "To")]) if addr],
        reply_to=_header(msg, "Reply-To") or None,
        subject=subject or "(no subject)",
        date=_iso_date(msg.get("Date")),
        body=body,
        excerpt=head_and_tail(excerpt),
        attachments=attachments,
        kind=kind,
        kind_reason=reason,
        forwarded=forwarded,
        raw=raw.data,
    )


_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
}


def decode_text(part: EmailMessage) -> str:
    """A text part's text: its transfer encoding undone (base64, quoted-printable), then its
    bytes decoded by the declared charset, else UTF-8, else Windows-1252 (which decodes any
    byte), so a wrong or unknown label loses nothing."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    declared = (part.get_content_charset() or "utf-8").lower()
    for charset in dict.fromkeys([_CHARSET_ALIASES.get(declared, declared), "utf-8", "cp1252"]):
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", "replace")


def _walk(msg: EmailMessage) -> tuple[str, str, list[Attachment], EmailMessage | None]:
    """The plain and HTML text of `msg`, its attachments, and the first message it forwards
    as a message/rfc822 part (not walked into: the caller reads it on its own)."""
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    inner: EmailMessage | None = None

    def visit(part: EmailMessage) -> None:
        nonlocal inner
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            forwarded = payload[0] if isinstance(payload, list) and payload else None
            if inner is None and isinstance(forwarded, EmailMessage):
                inner = forwarded
                return
        if part.is_multipart():
            for sub in part.iter_parts():
                assert isinstance(sub, EmailMessage)
                visit(sub)
            return
        filename = part.get_filename()
        if filename or part.get_content_disposition() == "attachment":
            data = part.get_payload(decode=True)
            size = len(data) if isinstance(data, bytes) else 0
            attachments.append(
                Attachment(filename=filename or "(unnamed)", content_type=ctype, size=size)
            )
        elif ctype in ("text/plain", "text/html"):
            (plain if ctype == "text/plain" else html).append(decode_text(part))

    visit(msg)
    return "\n".join(plain), "\n".join(html), attachments, inner


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
