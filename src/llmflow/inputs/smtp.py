"""Sending a drafted reply over SMTP: only what a person approved, never twice, within limits.

The server is a URL, `smtp://user@host[:587]` (STARTTLS, refused when the server does not
offer it) or `smtps://user@host[:465]` (TLS from the first byte), with options
`max_per_run=` and `max_per_day=` (messages sent) and `insecure=1` (a test server's
self-signed certificate only). TLS certificates are verified otherwise. The password or app
password comes from `LLMFLOW_SMTP_PASSWORD`, else `LLMFLOW_IMAP_PASSWORD` (usually the same
account's), in the environment or `.env`; it is never stored.

The caller (the email-triage job) asks a person first, showing the exact message; what this
module sends must be that message (`draft_digest`). Every send is recorded in
`mail/outbox.sqlite` by the reply's Message-ID before the server is asked to deliver it, so a
message is never sent twice: not by a run resumed after a crash, not by a second run. The
limits count what that file records (per run, and per SMTP account in any 24 hours).
"""

from __future__ import annotations

import copy
import hashlib
import smtplib
import socket
import sqlite3
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..errors import ConfigError, RunError
from ..settings import Settings
from .mailbox_actions import KEY_HEADER
from .mailbox_source import APP_PASSWORDS

PORTS = {"smtp": 587, "smtps": 465}
PASSWORD_VAR = "LLMFLOW_SMTP_PASSWORD"
TIMEOUT_S = 30.0
DAY_S = 24 * 3600.0


@dataclass(frozen=True, kw_only=True)
class SmtpTarget:
    """A parsed `smtp://` or `smtps://` URL: where replies are sent, and how many at most."""

    scheme: str
    host: str
    port: int
    user: str
    max_per_run: int = 10
    """At most this many messages sent by one run."""
    max_per_day: int = 50
    """At most this many messages sent from this account in any 24 hours."""
    insecure: bool = False
    """Skip the TLS certificate check (test servers only)."""
    query: str = ""

    @property
    def account(self) -> str:
        """`scheme://user@host:port`: the server and account, no password."""
        return f"{self.scheme}://{quote(self.user, safe='')}@{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.account + (f"?{self.query}" if self.query else "")

    @property
    def location(self) -> str:
        """The server without the user: `smtp://host:587`."""
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_target(url: str) -> SmtpTarget:
    """Parse `smtp://user@host[:port][?options]`; `ConfigError` naming the fix."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in PORTS:
        raise ConfigError(
            f"{url!r} is not an smtp:// (STARTTLS, port 587) or smtps:// (TLS, port 465) URL"
        )
    if parts.password is not None:
        raise ConfigError(
            f"{parts.hostname}: do not put the password in the URL (it would be stored with "
            f"the run): set {PASSWORD_VAR} in the environment or .env"
        )
    if not parts.hostname or not parts.username:
        raise ConfigError(
            f"{url!r} names no user or host: write smtp://user@host:587 (an address as user "
            "name: smtp://me%40example.com@smtp.example.com:587)"
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    known = {"max_per_run", "max_per_day", "insecure"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"{url!r}: unknown option {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    try:
        per_run = int(options.get("max_per_run", "10"))
        per_day = int(options.get("max_per_day", "50"))
        port = parts.port or PORTS[scheme]
    except ValueError as e:
        raise ConfigError(f"{url!r}: {e} (max_per_run=<n>, max_per_day=<n>)") from e
    if per_run < 1 or per_day < 1:
        raise ConfigError(f"{url!r}: max_per_run and max_per_day must be positive")
    insecure = options.get("insecure", "0").lower() in ("1", "true", "yes", "")
    return SmtpTarget(
        scheme=scheme, host=parts.hostname, port=port, user=unquote(parts.username),
        max_per_run=per_run, max_per_day=per_day,
        insecure=insecure if "insecure" in options else False, query=parts.query,
    )  # fmt: skip


def smtp_password(settings: Settings | None = None) -> str:
    settings = settings or Settings()
    secret = settings.smtp_password or settings.imap_password
    if secret is None or not secret.get_secret_value():
        raise ConfigError(
            f"no SMTP password: set {PASSWORD_VAR} (or LLMFLOW_IMAP_PASSWORD, when it is the "
            f"same account) in the environment or .env to the account's password or app "
            f"password ({APP_PASSWORDS})"
        )
    return secret.get_secret_value()


@contextmanager
def connect(target: SmtpTarget, settings: Settings | None = None) -> Iterator[smtplib.SMTP]:
    """A logged-in SMTP connection over TLS; every failure to get one is a `ConfigError`
    that names the fix."""
    secret = smtp_password(settings)
    context = ssl.create_default_context()
    if target.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    conn: smtplib.SMTP | None = None
    try:
        if target.scheme == "smtps":
            conn = smtplib.SMTP_SSL(target.host, target.port, timeout=TIMEOUT_S, context=context)
        else:
            conn = smtplib.SMTP(target.host, target.port, timeout=TIMEOUT_S)
            conn.ehlo()
            if not conn.has_extn("starttls"):
                raise ConfigError(
                    f"{target.location}: the server offers no STARTTLS, and llmflow never "
                    "sends a password or a message in clear text: use smtps:// (port 465), or "
                    "a server that offers STARTTLS"
                )
            conn.starttls(context=context)
            conn.ehlo()
        conn.login(target.user, secret)
    except (ConfigError, smtplib.SMTPException, OSError) as e:
        if conn is not None:
            with suppress(smtplib.SMTPException, OSError):
                conn.close()
        raise _connect_error(target, e) from None
    try:
        yield conn
    finally:
        with suppress(smtplib.SMTPException, OSError):
            conn.quit()


def _connect_error(target: SmtpTarget, e: BaseException) -> ConfigError:
    """What went wrong connecting or logging in, and the fix."""
    where = target.location
    if isinstance(e, ConfigError):
        return e
    if isinstance(e, ssl.SSLCertVerificationError):
        return ConfigError(
            f"{where}: the server's TLS certificate is not trusted ({e.verify_message}): fix "
            "the certificate, trust its CA with SSL_CERT_FILE=/path/ca.pem, or, for a test "
            "server with a self-signed certificate only, add ?insecure=1 to the URL"
        )
    if isinstance(e, ssl.SSLError):
        return ConfigError(
            f"{where}: the TLS handshake failed ({e.reason or e}): smtps:// is TLS from the "
            "start (port 465); for STARTTLS (port 587) write smtp://"
        )
    if isinstance(e, socket.gaierror):
        return ConfigError(f"{where}: cannot find the host ({e.strerror}): check its name")
    if isinstance(e, smtplib.SMTPAuthenticationError):
        return ConfigError(
            f"{where}: the server refused the login of {target.user!r} "
            f"({e.smtp_code} {_said(e.smtp_error)}): check {PASSWORD_VAR}; {APP_PASSWORDS}"
        )
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return ConfigError(
            f"{where}: the server offers no login (AUTH): llmflow sends only as a logged-in "
            "account; check the port (submission is 587 or 465, not 25)"
        )
    return ConfigError(
        f"{where}: cannot connect ({getattr(e, 'strerror', None) or e}): check the host "
        "and the port (STARTTLS is 587, TLS 465) and that the server is up"
    )


def _said(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def check_target(url: str, settings: Settings | None = None) -> SmtpTarget:
    """Parse and log in once: every problem before any work starts."""
    target = parse_target(url)
    with connect(target, settings):
        pass
    return target


def draft_digest(message: EmailMessage) -> str:
    """What a person approves: the reply's recipients, threading, subject and text (not its
    Date, which a resumed run writes anew)."""
    parts = [f"{h}: {message.get(h, '')}" for h in ("From", "To", "Subject", "Message-ID",
                                                     "In-Reply-To", "References")]  # fmt: skip
    body = message.get_body(("plain",))
    parts.append(body.get_content() if isinstance(body, EmailMessage) else "")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def recipients(message: EmailMessage) -> list[str]:
    return [a for _, a in getaddresses([str(message.get("To", ""))]) if a]


# -- the outbox: what was sent, for never twice and the limits -------------------------------


class Outbox:
    """`mail/outbox.sqlite` in the state directory: one row per reply, by Message-ID."""

    def __init__(self, settings: Settings | None = None) -> None:
        path = (settings or Settings()).home / "mail" / "outbox.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.executescript(
            """
            create table if not exists sent (
                message_id text primary key, account text not null, run_id text not null,
                recipients text not null, subject text not null, state text not null,
                at real not null);
            create index if not exists sent_by_account on sent (account, at);
            """
        )

    def close(self) -> None:
        self.db.close()

    def state(self, message_id: str) -> tuple[str, float] | None:
        row = self.db.execute("select state, at from sent where message_id=?", (message_id,))
        found = row.fetchone()
        return (str(found[0]), float(found[1])) if found else None

    def refusal(self, target: SmtpTarget, run_id: str, message_id: str) -> str | None:
        """Why this message must not be sent now (sent before, a limit reached), or None."""
        known = self.state(message_id)
        if known is not None:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(known[1]))
            if known[0] == "sent":
                return f"already sent ({when}), not sent again"
            return (f"a send of it was cut off ({when}): it may have gone out, so it is not "
                    "sent again (look in the recipient's thread or the Sent folder)")  # fmt: skip
        in_run = self.db.execute("select count(*) from sent where run_id=?", (run_id,))
        if int(in_run.fetchone()[0]) >= target.max_per_run:
            return (f"this run reached its limit of {target.max_per_run} messages sent "
                    "(max_per_run= in --send-replies)")  # fmt: skip
        in_day = self.db.execute(
            "select count(*) from sent where account=? and at>=?",
            (target.account, time.time() - DAY_S),
        )
        if int(in_day.fetchone()[0]) >= target.max_per_day:
            return (f"{target.account} reached its limit of {target.max_per_day} messages sent "
                    "in 24 hours (max_per_day= in --send-replies)")  # fmt: skip
        return None

    def reserve(self, target: SmtpTarget, run_id: str, message: EmailMessage) -> str | None:
        """Record the message as being sent, unless it must not be (then why, and nothing
        is recorded): checked and recorded in one transaction, for concurrent items."""
        message_id = str(message["Message-ID"])
        self.db.execute("begin immediate")
        try:
            refused = self.refusal(target, run_id, message_id)
            if refused is None:
                self.db.execute(
                    "insert into sent values (?, ?, ?, ?, ?, 'sending', ?)",
                    (message_id, target.account, run_id, ", ".join(recipients(message)),
                     str(message.get("Subject", "")), time.time()),
                )  # fmt: skip
            self.db.execute("commit")
        except BaseException:
            self.db.execute("rollback")
            raise
        return refused

    def sent(self, message_id: str) -> None:
        self.db.execute(
            "update sent set state='sent', at=? where message_id=?", (time.time(), message_id)
        )

    def release(self, message_id: str) -> None:
        """Forget a reservation whose message certainly did not go out."""
        self.db.execute("delete from sent where message_id=? and state='sending'", (message_id,))


@contextmanager
def outbox(settings: Settings | None = None) -> Iterator[Outbox]:
    book = Outbox(settings)
    try:
        yield book
    finally:
        book.close()


def refusal(
    target: SmtpTarget, run_id: str, message_id: str, settings: Settings | None = None
) -> str | None:
    """Why a reply must not be sent (sent before, a limit reached): asked before a person
    is, so that nobody approves what would not go out."""
    with outbox(settings) as book:
        return book.refusal(target, run_id, message_id)


def send_approved(
    message: EmailMessage,
    target: SmtpTarget,
    *,
    approved: str,
    run_id: str,
    settings: Settings | None = None,
) -> str:
    """Send `message`, which a person approved as `approved` (its `draft_digest`); returns
    what was done, one line. Never sends a message twice, nor past the limits: then says
    why it did not send."""
    message_id = str(message["Message-ID"])
    if draft_digest(message) != approved:
        raise RunError(f"{message_id}: the reply differs from the one approved: not sent")
    to = recipients(message)
    if not to or not message.get("From"):
        raise RunError(f"{message_id}: the reply has no To or no From: not sent")
    with outbox(settings) as book:
        refused = book.reserve(target, run_id, message)
        if refused is not None:
            return f"not sent: {refused}"
        outgoing = copy.deepcopy(message)
        del outgoing[KEY_HEADER]  # llmflow's own bookkeeping in the Drafts folder, not the reader's
        try:
            with connect(target, settings) as conn:
                conn.send_message(outgoing, to_addrs=to, mail_options=(), rcpt_options=())
        except (ConfigError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                smtplib.SMTPDataError) as e:  # fmt: skip
            book.release(message_id)  # the server took nothing: it may be sent later
            if isinstance(e, ConfigError):
                raise
            raise RunError(f"{target.location} refused the reply {message_id}: {e}") from None
        except (smtplib.SMTPException, OSError) as e:
            # Cut off while the server may have taken it: recorded as such, never sent again.
            raise RunError(
                f"{target.location}: sending {message_id} was cut off ({e}): it may have gone "
                "out, so it is not sent again"
            ) from None
        book.sent(message_id)
    return f"sent to {', '.join(to)} via {target.location} as {message_id}"
