"""Real mailboxes over IMAP: read new messages into a batch, and act on them in the mailbox.

A source is a URL, `imaps://user@host[:port]/MAILBOX?unseen=1&since=2026-12-01` (`imap://`
is STARTTLS on port 143); the password or app password comes from `LLMFLOW_IMAP_PASSWORD`
(the environment or `.env`) and is never stored. TLS certificates are verified unless the URL
says `insecure=1` (a test server with a self-signed certificate).

Reading takes a *snapshot*: the new messages are fetched (without marking them read) into a
folder of the state directory, `mail/snapshots/<run id>/`, with a manifest naming the
server, mailbox, UIDVALIDITY and UID of each. That folder is the run's input, so a resumed
run reads exactly the messages it started with. Each message is claimed in the ledger
(`mail/ledger.sqlite`) by its (server, mailbox, UIDVALIDITY, UID) when its snapshot is taken,
so a second run never takes it again. When the server's UIDVALIDITY changed (it renumbered
the mailbox), the claimed messages are recognised again by Message-ID.

Acting (`act_in_mailbox`) sets flags and keywords, saves a drafted reply in the Drafts folder
threaded to the original, and copies or moves the message to a folder (created when missing).
Each action checks the server first (the draft carries its key in `X-Llmflow-Key`; a copy or
move looks for the Message-ID in the target), so an action run again after a crash changes
nothing twice. Nothing is ever sent from here.
"""

from __future__ import annotations

import email.policy
import hashlib
import imaplib
import json
import os
import re
import select
import socket
import sqlite3
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from email.utils import formatdate, getaddresses
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import BaseModel, Field

from ..errors import ConfigError, RunError
from ..ids import new_id
from ..settings import Settings
from .email import Email

PORTS = {"imaps": 993, "imap": 143}
PASSWORD_VAR = "LLMFLOW_IMAP_PASSWORD"
APP_PASSWORDS = (
    "Gmail, Outlook.com, iCloud, Yahoo and Fastmail need an app password (and IMAP enabled "
    "in the account's settings), not the account's password"
)
TIMEOUT_S = 30.0
KEY_HEADER = "X-Llmflow-Key"
"""The header a saved draft carries its idempotency key in."""

Filing = Literal["none", "copy", "move"]
MANIFEST = "mailbox.json"
"""The file of a snapshot folder naming the mailbox and each message's UID."""


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


def _q(name: str) -> str:
    """A mailbox name or string as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: Any) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


_LIST = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<delim>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$')


@dataclass
class Mailbox:
    """One logged-in IMAP connection (use `open_mailbox`)."""

    source: MailboxSource
    conn: imaplib.IMAP4
    selected: str | None = None
    uidvalidity: int = 0
    uidnext: int = 0

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with suppress(imaplib.IMAP4.error, OSError):
            self.conn.logout()

    def check(self, what: str, result: tuple[str, list[Any]]) -> list[Any]:
        typ, data = result
        if typ != "OK":
            raise RunError(f"{self.source.host}: {what} failed: {_text(data[0] if data else '')}")
        return data

    # -- reading ---------------------------------------------------------------------------

    def select(self, name: str, *, readonly: bool = False) -> int:
        """Select a mailbox; returns its UIDVALIDITY (also kept with its UIDNEXT)."""
        typ, data = self.conn.select(_q(name), readonly=readonly)
        if typ != "OK":
            names = ", ".join(sorted(n for _, _, n in self.folders())) or "none"
            raise ConfigError(
                f"{self.source.host}: no mailbox {name!r} ({_text(data[0] if data else '')}); "
                f"its mailboxes: {names}"
            )
        self.selected = name
        _, validity = self.conn.response("UIDVALIDITY")
        _, uidnext = self.conn.response("UIDNEXT")
        self.uidvalidity = int(_text(validity[0])) if validity and validity[0] else 0
        self.uidnext = int(_text(uidnext[0])) if uidnext and uidnext[0] else 0
        return self.uidvalidity

    def search(self, criteria: Sequence[str]) -> list[int]:
        data = self.check("SEARCH", self.conn.uid("SEARCH", *criteria))
        return sorted(int(u) for u in _text(data[0] or b"").split()) if data else []

    def _fetch(self, uids: Sequence[int], items: str) -> Iterator[tuple[int, bytes, bytes]]:
        """(uid, metadata line, literal) of each message fetched."""
        for start in range(0, len(uids), 100):
            chunk = ",".join(str(u) for u in uids[start : start + 100])
            for part in self.check("FETCH", self.conn.uid("FETCH", chunk, items)):
                meta, literal = (part[0], part[1]) if isinstance(part, tuple) else (part, b"")
                if not isinstance(meta, bytes):
                    continue
                found = re.search(rb"UID (\d+)", meta)
                if found:
                    yield int(found.group(1)), meta, literal

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        sizes = {}
        for uid, meta, _ in self._fetch(uids, "(UID RFC822.SIZE)"):
            found = re.search(rb"RFC822\.SIZE (\d+)", meta)
            sizes[uid] = int(found.group(1)) if found else 0
        return sizes

    def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The whole messages, without setting \\Seen (BODY.PEEK)."""
        return {uid: data for uid, _, data in self._fetch(uids, "(UID BODY.PEEK[])") if data}

    def message_ids(self, uids: Sequence[int]) -> dict[int, str]:
        found = {}
        items = "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        for uid, _, header in self._fetch(uids, items):
            value = email.message_from_bytes(header, policy=email.policy.default)["Message-ID"]
            if value:
                found[uid] = str(value).strip()
        return found

    def folders(self) -> list[tuple[str, str, str]]:
        """(flags, delimiter, name) of every mailbox."""
        found = []
        for line in self.check("LIST", self.conn.list()):
            if not isinstance(line, bytes):
                continue
            m = _LIST.match(line)
            if m is None:
                continue
            delim = m.group("delim").decode().strip('"')
            name = m.group("name").decode()
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            found.append((m.group("flags").decode(), "" if delim == "NIL" else delim, name))
        return found

    # -- acting ----------------------------------------------------------------------------

    def delimiter(self) -> str:
        return next((d for _, d, _ in self.folders() if d), "/")

    def special(self, use: str, fallback: str) -> str:
        """The mailbox marked with a special use (`\\Drafts`), else `fallback`."""
        for flags, _, name in self.folders():
            if use.lower() in flags.lower().split():
                return name
        return fallback

    def ensure_folder(self, name: str) -> None:
        if name not in {n for _, _, n in self.folders()}:
            self.check(f"CREATE {name}", self.conn.create(_q(name)))
            self.conn.subscribe(_q(name))

    def find(self, folder: str, header: str, value: str) -> list[int]:
        """UIDs of the messages of `folder` whose `header` contains `value`."""
        self.select(folder)
        return self.search(["HEADER", header, _q(value)])

    def locate(self, ref: MailboxRef, message_id: str | None) -> int | None:
        """The message's UID now: its own while UIDVALIDITY holds, else by Message-ID."""
        self.select(ref.mailbox)
        if self.uidvalidity == ref.uidvalidity:
            return ref.uid if self.search(["UID", str(ref.uid)]) == [ref.uid] else None
        if message_id:
            found = self.search(["HEADER", "Message-ID", _q(message_id)])
            return found[0] if found else None
        return None

    def wait(self, timeout_s: float, since_uidnext: int) -> bool:
        """Wait for new mail in the selected mailbox: IMAP IDLE where the server offers it,
        else a plain wait (the caller polls). True when new mail arrived."""
        if self.uidnext and self.uidnext != since_uidnext:
            return True
        if "IDLE" not in self.conn.capabilities:
            time.sleep(timeout_s)
            return False
        self.conn.send(b"LFIDLE IDLE\r\n")
        if not self.conn.readline().startswith(b"+"):
            return False
        sock = self.conn.socket()
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not pending and not select.select([sock], [], [], left)[0]:
                break
            line = self.conn.readline()
            if not line:
                break
            if re.match(rb"\* \d+ (EXISTS|RECENT)", line):
                return True
        return False


def password(settings: Settings | None = None) -> str:
    secret = (settings or Settings()).imap_password
    if secret is None or not secret.get_secret_value():
        raise ConfigError(
            f"no IMAP password: set {PASSWORD_VAR} (in the environment or .env) to the "
            f"account's password or app password ({APP_PASSWORDS})"
        )
    return secret.get_secret_value()


def open_mailbox(source: MailboxSource, settings: Settings | None = None) -> Mailbox:
    """Connect and log in; every failure is a `ConfigError` that names the fix."""
    secret = password(settings)
    where = f"{source.scheme}://{source.host}:{source.port}"
    context = ssl.create_default_context()
    if source.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    conn: imaplib.IMAP4
    try:
        if source.scheme == "imaps":
            conn = imaplib.IMAP4_SSL(
                source.host, source.port, ssl_context=context, timeout=TIMEOUT_S
            )
        else:
            conn = imaplib.IMAP4(source.host, source.port, timeout=TIMEOUT_S)
            conn.starttls(ssl_context=context)
    except ssl.SSLCertVerificationError as e:
        raise ConfigError(
            f"{where}: the server's TLS certificate is not trusted ({e.verify_message}): fix "
            "the certificate, trust its CA with SSL_CERT_FILE=/path/ca.pem, or, for a test "
            "server with a self-signed certificate only, add ?insecure=1 to the URL"
        ) from None
    except ssl.SSLError as e:
        raise ConfigError(
            f"{where}: the TLS handshake failed ({e.reason or e}): imaps:// is TLS from the "
            "start (port 993); for STARTTLS (port 143) write imap://"
        ) from None
    except socket.gaierror as e:
        raise ConfigError(f"{where}: cannot find the host ({e.strerror}): check its name") from None
    except imaplib.IMAP4.error as e:
        raise ConfigError(
            f"{where}: {e}: the server offers no STARTTLS; use imaps:// (port 993)"
        ) from None
    except OSError as e:
        raise ConfigError(
            f"{where}: cannot connect ({e.strerror or e}): check the host and the port "
            "(IMAPS is 993) and that the server is up"
        ) from None
    try:
        conn.login(source.user, secret)
    except imaplib.IMAP4.error as e:
        with suppress(imaplib.IMAP4.error, OSError):
            conn.logout()
        raise ConfigError(
            f"{where}: the server refused the login of {source.user!r} ({e}): check "
            f"{PASSWORD_VAR}; {APP_PASSWORDS}"
        ) from None
    # Servers list more after login (MOVE, UIDPLUS): imaplib keeps the greeting's list.
    typ, data = conn.capability()
    if typ == "OK" and data and data[-1]:
        conn.capabilities = tuple(_text(data[-1]).upper().split())
    return Mailbox(source=source, conn=conn)


# -- the ledger: which messages were taken, by which snapshot ------------------------------


class Ledger:
    """`mail/ledger.sqlite` in the state directory: each message claimed by one snapshot."""

    def __init__(self, home: Path) -> None:
        path = home / "mail" / "ledger.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.executescript(
            """
            create table if not exists messages (
                account text not null, mailbox text not null, uidvalidity integer not null,
                uid integer not null, message_id text, snapshot text not null,
                state text not null, at real not null,
                primary key (account, mailbox, uidvalidity, uid));
            create index if not exists messages_by_id on messages (account, mailbox, message_id);
            create table if not exists snapshots (
                id text primary key, account text not null, mailbox text not null,
                path text not null, created_at real not null, finished_at real,
                status text);
            """
        )

    def close(self) -> None:
        self.db.close()

    def claimed(self, account: str, mailbox: str, uidvalidity: int) -> set[int]:
        rows = self.db.execute(
            "select uid from messages where account=? and mailbox=? and uidvalidity=?",
            (account, mailbox, uidvalidity),
        )
        return {int(r[0]) for r in rows}

    def other_validities(self, account: str, mailbox: str, uidvalidity: int) -> list[int]:
        rows = self.db.execute(
            "select distinct uidvalidity from messages where account=? and mailbox=? "
            "and uidvalidity<>?",
            (account, mailbox, uidvalidity),
        )
        return sorted(int(r[0]) for r in rows)

    def known_ids(self, account: str, mailbox: str) -> set[str]:
        rows = self.db.execute(
            "select message_id from messages where account=? and mailbox=? "
            "and message_id is not null",
            (account, mailbox),
        )
        return {str(r[0]) for r in rows}

    def claim(
        self,
        snapshot: str,
        account: str,
        mailbox: str,
        uidvalidity: int,
        messages: Sequence[tuple[int, str | None]],
        *,
        state: str = "claimed",
        path: Path | None = None,
    ) -> set[int]:
        """Claim messages for `snapshot` (recorded with its folder, when given); returns the
        UIDs it got (another process may have claimed some first)."""
        got = set()
        self.db.execute("begin immediate")
        try:
            for uid, message_id in messages:
                cursor = self.db.execute(
                    "insert or ignore into messages values (?, ?, ?, ?, ?, ?, ?, ?)",
                    (account, mailbox, uidvalidity, uid, message_id, snapshot, state, time.time()),
                )
                if cursor.rowcount:
                    got.add(uid)
            if path is not None and got:
                self.db.execute(
                    "insert or ignore into snapshots (id, account, mailbox, path, created_at) "
                    "values (?, ?, ?, ?, ?)",
                    (snapshot, account, mailbox, str(path), time.time()),
                )
            self.db.execute("commit")
        except BaseException:
            self.db.execute("rollback")
            raise
        return got

    def unfinished(self, account: str, mailbox: str) -> list[tuple[str, Path]]:
        """(id, folder) of the snapshots taken but not yet processed to the end, oldest first."""
        rows = self.db.execute(
            "select id, path from snapshots where account=? and mailbox=? and finished_at is "
            "null order by created_at",
            (account, mailbox),
        )
        return [(str(r[0]), Path(r[1])) for r in rows]

    def taken_since(self, account: str, mailbox: str, since: float) -> list[str]:
        """Ids of the snapshots of this mailbox taken since `since` (seconds since the epoch)."""
        rows = self.db.execute(
            "select id from snapshots where account=? and mailbox=? and created_at>=?",
            (account, mailbox, since),
        )
        return [str(r[0]) for r in rows]

    def finish(self, snapshot: str, status: str) -> None:
        self.db.execute(
            "update snapshots set finished_at=?, status=? where id=?",
            (time.time(), status, snapshot),
        )
        self.db.execute(
            "update messages set state='processed' where snapshot=? and state='claimed'",
            (snapshot,),
        )


@contextmanager
def ledger(settings: Settings | None = None) -> Iterator[Ledger]:
    book = Ledger((settings or Settings()).home)
    try:
        yield book
    finally:
        book.close()


@dataclass(kw_only=True)
class Snapshot:
    """The new messages of a mailbox, fetched into a folder that a run reads."""

    id: str
    """Also the id of the run that processes it."""
    path: Path
    count: int
    notes: list[str] = field(default_factory=list)
    """What the user should know: a UIDVALIDITY change, messages skipped for their size."""
    uidnext: int = 0
    """The mailbox's UIDNEXT when it was taken (new mail makes it grow)."""


def take_snapshot(source: MailboxSource, settings: Settings | None = None) -> Snapshot:
    """Fetch the mailbox's messages that match the search and that no earlier snapshot took
    (at most `source.limit`, oldest first) into `mail/snapshots/<id>/`, and claim them."""
    settings = settings or Settings()
    snapshot_id = new_id()
    folder = settings.home / "mail" / "snapshots" / snapshot_id
    notes: list[str] = []
    account, name = source.account, source.mailbox
    with open_mailbox(source, settings) as box, ledger(settings) as book:
        validity = box.select(name, readonly=True)
        uids = [
            u for u in box.search(source.search()) if u not in book.claimed(account, name, validity)
        ]
        older = book.other_validities(account, name, validity)
        if older and uids:
            known = book.known_ids(account, name)
            ids = box.message_ids(uids)
            seen = [(u, ids[u]) for u in uids if ids.get(u) in known]
            book.claim("uidvalidity-change", account, name, validity, seen, state="seen before")
            uids = [u for u in uids if u not in {s for s, _ in seen}]
            notes.append(
                f"the UIDVALIDITY of {name} changed ({older[-1]} -> {validity}): the server "
                f"renumbered its messages; {len(seen)} processed before were recognised by "
                f"Message-ID and skipped, {len(uids)} are new"
            )
        uids = uids[: source.limit]
        sizes = box.sizes(uids) if uids else {}
        big = [u for u in uids if sizes.get(u, 0) > source.max_bytes]
        if big:
            book.claim(snapshot_id, account, name, validity, [(u, None) for u in big],
                       state="too large")  # fmt: skip
            notes.append(
                f"{len(big)} message(s) over {source.max_bytes:,} bytes skipped (UIDs "
                f"{', '.join(map(str, big))}): raise max_bytes= in the URL to read them"
            )
        bodies = box.fetch([u for u in uids if u not in big])
        uidnext = box.uidnext
    messages = []
    for uid, data in sorted(bodies.items()):
        file = f"{validity}-{uid}.eml"
        mid = email.message_from_bytes(data[:65536], policy=email.policy.default)["Message-ID"]
        messages.append({"uid": uid, "file": file, "message_id": str(mid).strip() if mid else None})
    if not messages:
        return Snapshot(id=snapshot_id, path=folder, count=0, notes=notes, uidnext=uidnext)
    folder.mkdir(parents=True, exist_ok=True)
    for m in messages:
        (folder / str(m["file"])).write_bytes(bodies[int(str(m["uid"]))])
    manifest = {"url": source.location, "user": source.user, "account": account, "mailbox": name,
                "uidvalidity": validity, "taken_at": time.time(), "messages": messages}  # fmt: skip
    _write_manifest(folder, manifest)
    with ledger(settings) as book:
        got = book.claim(
            snapshot_id, account, name, validity,
            [(int(str(m["uid"])), m["message_id"]) for m in messages],  # type: ignore[misc]
            path=folder,
        )  # fmt: skip
    if len(got) < len(messages):  # another process took some at the same moment
        manifest["messages"] = [m for m in messages if m["uid"] in got]
        _write_manifest(folder, manifest)
    return Snapshot(id=snapshot_id, path=folder, count=len(got), notes=notes, uidnext=uidnext)


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def unfinished_snapshots(source: MailboxSource, settings: Settings | None = None) -> list[Snapshot]:
    """Snapshots of this mailbox taken but not processed to the end (a run killed, or
    interrupted), oldest first; a snapshot whose folder is gone is closed as lost."""
    found = []
    with ledger(settings) as book:
        for snapshot_id, path in book.unfinished(source.account, source.mailbox):
            if not (path / MANIFEST).is_file():
                book.finish(snapshot_id, "lost")
                continue
            count = len(json.loads((path / MANIFEST).read_text(encoding="utf-8"))["messages"])
            found.append(Snapshot(id=snapshot_id, path=path, count=count))
    return found


def snapshot_message(
    snapshot_id: str | None, file: str, settings: Settings | None = None
) -> tuple[MailboxRef, bytes] | None:
    """Where message `file` of snapshot `snapshot_id` (the id of the run reading it) lives on
    its server, and its bytes; None when the run did not read a mailbox."""
    if not snapshot_id or "/" in snapshot_id or "/" in file:
        return None
    folder = (settings or Settings()).home / "mail" / "snapshots" / snapshot_id
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RunError(f"{folder}: a damaged mailbox snapshot ({e})") from e
    for m in manifest.get("messages", []):
        if m.get("file") == file:
            ref = MailboxRef(
                url=manifest["url"],
                user=manifest["user"],
                mailbox=manifest["mailbox"],
                uidvalidity=manifest["uidvalidity"],
                uid=m["uid"],
            )
            return ref, (folder / file).read_bytes()
    return None


def finish_snapshot(snapshot_id: str, status: str, settings: Settings | None = None) -> None:
    """Record that the run of a snapshot ended (`status`: the run's)."""
    with ledger(settings) as book:
        book.finish(snapshot_id, status)


def wait_for_mail(source: MailboxSource, timeout_s: float, since_uidnext: int) -> bool:
    """Wait up to `timeout_s` for new mail (IDLE, else a plain wait); True when some came."""
    with open_mailbox(source) as box:
        box.select(source.mailbox, readonly=True)
        return box.wait(timeout_s, since_uidnext)


# -- acting in the mailbox -----------------------------------------------------------------


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


def reply_message(
    original: Email, raw: bytes, text: str, *, sender: str | None, key: str
) -> EmailMessage:
    """A reply to `original` (`raw`: its bytes, for Reply-To and References) threaded to it:
    In-Reply-To, References, Re: subject; its Message-ID derived from `key`, so the same
    draft is the same message."""
    headers = email.message_from_bytes(raw[:65536], policy=email.policy.default)
    reply_to = str(headers.get("Reply-To") or "").strip()
    references = " ".join(str(headers.get("References") or "").split())
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    to = reply_to or original.sender
    addresses = [a for _, a in getaddresses([to]) if a]
    msg["To"] = ", ".join(addresses) or to
    subject = original.subject
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    if original.message_id:
        msg["In-Reply-To"] = original.message_id
        msg["References"] = " ".join(x for x in (references, original.message_id) if x)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    msg["Message-ID"] = f"<{digest}@llmflow.invalid>"
    msg["Date"] = formatdate(localtime=True)
    msg[KEY_HEADER] = digest
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
) -> list[str]:
    """Carry out `actions` on the message's server; returns what was done, one line each.

    Safe to run again with the same `key` (after a crash mid-way): flags are set, not
    toggled; a draft whose key is already in Drafts is not saved again; a copy or move whose
    Message-ID is already in the target is not made again.
    """
    source = parse_source(ref.url, ref.user)
    done: list[str] = []
    with open_mailbox(source, settings) as box:
        uid = box.locate(ref, original.message_id)
        if actions.flags and uid is not None:
            flags = " ".join(actions.flags)
            box.check("STORE", box.conn.uid("STORE", str(uid), "+FLAGS", f"({flags})"))
            done.append(f"flagged {flags}")
        if actions.draft is not None:
            drafts = box.special("\\Drafts", "Drafts")
            box.ensure_folder(drafts)
            message = reply_message(
                original, raw, actions.draft, sender=source.from_address(), key=key
            )
            if box.find(drafts, KEY_HEADER, str(message[KEY_HEADER])):
                done.append(f"draft already in {drafts}")
            else:
                data = message.as_bytes(policy=email.policy.SMTP)
                box.check("APPEND", box.conn.append(_q(drafts), "(\\Draft \\Seen)", None, data))
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
                box.check("MOVE", box.conn.uid("MOVE", str(uid), _q(target)))
            else:
                box.check("COPY", box.conn.uid("COPY", str(uid), _q(target)))
                if move:  # expunge this message only (UIDPLUS), never others marked deleted
                    box.check("STORE", box.conn.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)"))
                    if "UIDPLUS" in box.conn.capabilities:
                        box.check("EXPUNGE", box.conn.uid("EXPUNGE", str(uid)))
            done.append(f"{'moved' if move else 'copied'} to {target}")
        if uid is None and not done:
            done.append(f"not in {ref.mailbox} any more")
    return done


def triage_folder(ref: MailboxRef, category: str) -> tuple[str | None, str | None]:
    """(copy_to, move_to) for a triaged message, from the source's `file=` and `folder=`."""
    source = parse_source(ref.url, ref.user)
    if source.file == "none":
        return None, None
    target = f"{source.folder}/{category.capitalize()}"
    return (target, None) if source.file == "copy" else (None, target)


def check_source(url: str, settings: Settings | None = None) -> MailboxSource:
    """Parse and connect once (login and mailbox checked): errors before any work starts."""
    source = parse_source(url)
    with open_mailbox(source, settings) as box:
        box.select(source.mailbox, readonly=True)
    return source
