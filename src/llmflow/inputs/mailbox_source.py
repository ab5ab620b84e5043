"""Where mail is read: an `imaps://user@host[:port]/MAILBOX?options` source URL, parsed and
checked, and the id of one message on its server (`MailboxRef`).

`imaps://` is TLS from the first byte (port 993), `imap://` STARTTLS (port 143). The password
never goes in the URL (it would be stored with the run): it comes from `LLMFLOW_IMAP_PASSWORD`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import BaseModel

from ..errors import ConfigError

PORTS = {"imaps": 993, "imap": 143}
PASSWORD_VAR = "LLMFLOW_IMAP_PASSWORD"
APP_PASSWORDS = (
    "Gmail, Outlook.com, iCloud, Yahoo and Fastmail need an app password (and IMAP enabled "
    "in the account's settings), not the account's password"
)


Filing = Literal["none", "copy", "move"]


class MailboxRef(BaseModel):
    """Where a message read over IMAP lives: (server, mailbox, UIDVALIDITY, UID)."""

    url: str
    """The source URL without the user (redaction cuts users out of URLs in what is
    recorded): `imaps://host:993/INBOX?...`."""
    user: str
    """The account's user name."""
    mailbox: str
    uidvalidity: int
    uid: int

    @property
    def identity(self) -> str:
        """The message's id (RFC 5092 style), stable while the mailbox's UIDVALIDITY is."""
        parts = urlsplit(self.url)
        server = f"{parts.scheme}://{parts.netloc}"
        return f"{server}/{self.mailbox};UIDVALIDITY={self.uidvalidity}/;UID={self.uid}"


def is_mailbox_url(text: str) -> bool:
    """Whether a CLI input names an IMAP mailbox rather than a file."""
    return text.lower().startswith(("imaps://", "imap://"))


@dataclass(frozen=True, kw_only=True)
class MailboxSource:
    """A parsed `imaps://` source: where to connect, which mailbox, which messages."""

    scheme: str
    host: str
    port: int
    user: str
    mailbox: str
    unseen: bool = False
    """Only messages without \\Seen."""
    since: date | None = None
    """Only messages received on or after this day."""
    limit: int = 100
    """At most this many messages per batch (oldest first); the rest wait for the next."""
    max_bytes: int = 25_000_000
    """Larger messages are skipped (and reported), never fetched."""
    insecure: bool = False
    """Skip the TLS certificate check (test servers only)."""
    file: Filing = "none"
    """What triage does with a triaged message: leave it, copy or move it to `folder/<Category>`."""
    folder: str = "llmflow"
    """The parent folder triage files into."""
    sender: str | None = None
    """The From of saved drafts (default: the user name, when it is an address)."""
    query: str = ""
    """The URL's query, as given (kept in the canonical URL)."""

    @property
    def account(self) -> str:
        """`scheme://user@host:port`: the server and account, no password."""
        return f"{self.scheme}://{quote(self.user, safe='')}@{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The canonical source URL (no password)."""
        query = f"?{self.query}" if self.query else ""
        return f"{self.account}/{quote(self.mailbox, safe='/')}{query}"

    @property
    def location(self) -> str:
        """The URL without the user: `imaps://host:993/INBOX?...`."""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}:{self.port}/{quote(self.mailbox, safe='/')}{query}"

    def search(self) -> list[str]:
        """The IMAP SEARCH criteria."""
        criteria = []
        if self.unseen:
            criteria.append("UNSEEN")
        if self.since is not None:
            criteria += ["SINCE", self.since.strftime("%d-%b-%Y")]
        return criteria or ["ALL"]

    def from_address(self) -> str | None:
        return self.sender or (self.user if "@" in self.user else None)


def parse_source(url: str, user: str | None = None) -> MailboxSource:
    """Parse `imaps://user@host[:port]/MAILBOX?options` (`user` given apart: a recorded
    `MailboxRef`); `ConfigError` naming the fix."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in PORTS:
        raise ConfigError(f"{url!r} is not an imaps:// or imap:// URL")
    if parts.password is not None:
        raise ConfigError(
            f"{parts.hostname}: do not put the password in the URL (it would be stored with "
            f"the run): set {PASSWORD_VAR} in the environment or .env"
        )
    if not parts.hostname or not (parts.username or user):
        raise ConfigError(
            f"{url!r} names no user or host: write imaps://user@host/INBOX "
            "(an address as user name: imaps://me%40example.com@imap.example.com/INBOX)"
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    known = {"unseen", "since", "limit", "max_bytes", "insecure", "file", "folder", "from"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"{url!r}: unknown option {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )

    def flag(name: str) -> bool:
        return options.get(name, "0").lower() in ("1", "true", "yes", "")

    try:
        since = date.fromisoformat(options["since"]) if "since" in options else None
        limit = int(options.get("limit", "100"))
        max_bytes = int(options.get("max_bytes", "25000000"))
        port = parts.port or PORTS[scheme]
    except ValueError as e:
        raise ConfigError(f"{url!r}: {e} (since=YYYY-MM-DD, limit=<n>, max_bytes=<n>)") from e
    if limit < 1 or max_bytes < 1:
        raise ConfigError(f"{url!r}: limit and max_bytes must be positive")
    filing = options.get("file", "none")
    if filing not in ("none", "copy", "move"):
        raise ConfigError(f"{url!r}: file must be none, copy or move (got {filing!r})")
    mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
    return MailboxSource(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        user=user or unquote(parts.username or ""),
        mailbox=mailbox,
        unseen=flag("unseen") if "unseen" in options else False,
        since=since,
        limit=limit,
        max_bytes=max_bytes,
        insecure=flag("insecure") if "insecure" in options else False,
        file=filing,  # type: ignore[arg-type]  # checked above
        folder=options.get("folder", "llmflow") or "llmflow",
        sender=options.get("from") or None,
        query=parts.query,
    )
