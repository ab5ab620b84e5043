"""One logged-in IMAP connection (`open_mailbox`): select, search and fetch messages, list and
create folders, find a message again; every connection or login failure a `ConfigError` that
names the fix (a wrong password with the app-password hint, an untrusted certificate, a TLS
handshake on the wrong port, an unknown host, a closed port, a mailbox that does not exist).
TLS certificates are verified unless the source says `insecure=1`.
"""

from __future__ import annotations

import email.policy
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..errors import ConfigError, RunError
from ..settings import Settings
from .mailbox_source import APP_PASSWORDS, PASSWORD_VAR, MailboxRef, MailboxSource

TIMEOUT_S = 30.0


def imap_quote(name: str) -> str:
    """A mailbox name or string as an IMAP quoted string. CR, LF and NUL cannot be quoted
    (RFC 3501): imaplib would send the rest of the line as another command, so a value
    holding one (a header of a hostile mail) is refused here, whoever passes it."""
    if re.search(r"[\r\n\0]", name):
        raise RunError(f"cannot send {name!r} to the IMAP server: it holds a line break or NUL")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def as_text(data: Any) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<delim>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$')


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
            raise RunError(f"{self.source.host}: {what} failed: {as_text(data[0] if data else '')}")
        return data

    # -- reading ---------------------------------------------------------------------------

    def select(self, name: str, *, readonly: bool = False) -> int:
        """Select a mailbox; returns its UIDVALIDITY (also kept with its UIDNEXT)."""
        typ, data = self.conn.select(imap_quote(name), readonly=readonly)
        if typ != "OK":
            names = ", ".join(sorted(n for _, _, n in self.folders())) or "none"
            raise ConfigError(
                f"{self.source.host}: no mailbox {name!r} ({as_text(data[0] if data else '')}); "
                f"its mailboxes: {names}"
            )
        self.selected = name
        _, validity = self.conn.response("UIDVALIDITY")
        _, uidnext = self.conn.response("UIDNEXT")
        self.uidvalidity = int(as_text(validity[0])) if validity and validity[0] else 0
        self.uidnext = int(as_text(uidnext[0])) if uidnext and uidnext[0] else 0
        return self.uidvalidity

    def search(self, criteria: Sequence[str]) -> list[int]:
        data = self.check("SEARCH", self.conn.uid("SEARCH", *criteria))
        return sorted(int(u) for u in as_text(data[0] or b"").split()) if data else []

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
            m = LIST_LINE.match(line)
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
            self.check(f"CREATE {name}", self.conn.create(imap_quote(name)))
            self.conn.subscribe(imap_quote(name))

    def find(self, folder: str, header: str, value: str) -> list[int]:
        """UIDs of the messages of `folder` whose `header` contains `value`."""
        self.select(folder)
        return self.search(["HEADER", header, imap_quote(value)])

    def locate(self, ref: MailboxRef, message_id: str | None) -> int | None:
        """The message's UID now: its own while UIDVALIDITY holds, else by Message-ID."""
        self.select(ref.mailbox)
        if self.uidvalidity == ref.uidvalidity:
            return ref.uid if self.search(["UID", str(ref.uid)]) == [ref.uid] else None
        if message_id:
            found = self.search(["HEADER", "Message-ID", imap_quote(message_id)])
            return found[0] if found else None
        return None


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
        conn.capabilities = tuple(as_text(data[-1]).upper().split())
    return Mailbox(source=source, conn=conn)
