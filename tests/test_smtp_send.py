"""Sending only with approval: the email triage on a real IMAP server (Dovecot) sends its
drafted replies to a real SMTP server (aiosmtpd, STARTTLS and login required), each only
after a person approved it through the durable approvals (`llmflow.durable.inbox`, what
`llmflow approve|reject` and the viewer's inbox use), never twice, within the per-run and
per-day limits. A dry run sends nothing and changes nothing. Wrong passwords, untrusted
certificates and unreachable servers stop the run before any work, naming the fix. The model
is the scripted one (`llmflow.testing`) standing in for `local`.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import sqlite3
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmflow.apps.email_triage import SAMPLE_INBOX
from llmflow.cli import main
from llmflow.errors import ConfigError
from llmflow.models.gateway import Gateway

from .docs_model import scripted_local
from .imap_server import PASSWORD, USER, ImapServer, free_port, imap_server

aiosmtpd = pytest.importorskip("aiosmtpd", reason="pip install aiosmtpd (the dev extra)")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

SMTP_PASSWORD = "smtp-app-token"
MAILS = ["001-invoice-overdue.eml", "009-where-is-my-order.eml", "010-tent-pole-broken.eml"]


@dataclass
class SmtpServer:
    """aiosmtpd on loopback: what reached it, message by message."""

    port: int
    received: list[tuple[list[str], email.message.EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def url(self, query: str = "insecure=1", scheme: str = "smtp") -> str:
        user = USER.replace("@", "%40")
        return f"{scheme}://{user}@127.0.0.1:{self.port}" + (f"?{query}" if query else "")


def _login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), SMTP_PASSWORD.encode(),
    )  # fmt: skip
    return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def smtp_server(imap: ImapServer, *, implicit_tls: bool = False) -> Iterator[SmtpServer]:
    """aiosmtpd on a free port with the IMAP server's self-signed certificate: STARTTLS
    (or TLS from the first byte) and a login required; stopped at the end."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(imap.folder / "cert.pem", imap.folder / "key.pem")
    srv = SmtpServer(port=free_port())
    tls: dict[str, Any] = (
        # aiosmtpd does not see TLS it did not start itself: AUTH is offered on TLS anyway.
        {"ssl_context": context, "auth_require_tls": False} if implicit_tls
        else {"tls_context": context, "require_starttls": True}
    )  # fmt: skip
    controller = Controller(
        srv, hostname="127.0.0.1", port=srv.port, authenticator=_login, auth_required=True,
        **tls,
    )  # fmt: skip
    controller.start()
    try:
        yield srv
    finally:
        controller.stop()


@pytest.fixture
def imap(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImapServer]:
    monkeypatch.setenv("LLMFLOW_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("LLMFLOW_SMTP_PASSWORD", SMTP_PASSWORD)
    with imap_server() as srv:
        yield srv


@pytest.fixture
def smtp(imap: ImapServer) -> Iterator[SmtpServer]:
    with smtp_server(imap) as srv:
        yield srv


@pytest.fixture(autouse=True)
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    """`local` is the scripted model: no weights, no network."""
    monkeypatch.setattr(Gateway, "_make_local", scripted_local)


def sample(*names: str) -> list[bytes]:
    return [(SAMPLE_INBOX / n).read_bytes() for n in names]


def run(*args: str) -> int:
    return main(["run", "email-triage", *args, "--model", "local", "--concurrency", "1"])


def _json(text: str) -> Any:
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


class Reviewer(threading.Thread):
    """A person at the approvals inbox: rejects the first reply it is asked about, approves
    the second, rejects any other; remembers (message id, approved) of each."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.decided: list[tuple[str, bool]] = []
        self.requests: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from llmflow.durable.inbox import decide, open_client, pending_approvals

        client = None
        asked: set[tuple[str, str]] = set()
        try:
            while not self.stop.is_set():
                client = client or open_client()
                for p in pending_approvals(client) if client is not None else []:
                    if (p.workflow_id, p.path) in asked:  # decided; the run has not seen it yet
                        continue
                    asked.add((p.workflow_id, p.path))
                    approve = len(self.decided) == 1
                    decide(client, p.workflow_id, approved=approve, step=p.path,
                           comment=None if approve else "not this one", by="reviewer")  # fmt: skip
                    self.requests.append(p.request)
                    self.decided.append((p.request["details"]["message_id"], approve))
                self.stop.wait(0.2)
        except BaseException as e:  # seen by the test
            self.error = e
        finally:
            if client is not None:
                client.destroy()


def _store_outputs(tmp_path: Path, run_id: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / "home" / "llmflow.db")
    rows = db.execute("select output from items where run_id=? order by key", (run_id,))
    outputs = [json.loads(r[0]) for r in rows]
    db.close()
    return outputs


def test_a_reply_is_sent_once_only_after_approval(
    imap: ImapServer, smtp: SmtpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imap.deliver(sample(*MAILS))
    url = imap.url(query="insecure=1")
    reviewer = Reviewer()
    reviewer.start()
    try:
        code = run(url, "--send-replies", smtp.url("insecure=1&max_per_run=1"), "--json",
                   "--out", str(tmp_path / "out"))  # fmt: skip
    finally:
        reviewer.stop.set()
        reviewer.join(timeout=30)
    assert reviewer.error is None, reviewer.error
    assert code == 0
    result = _json(capsys.readouterr().out)
    outputs = {i["output"]["reply_message_id"]: i["output"] for i in result["items"]}
    assert len(outputs) == 3 and all(outputs)

    # Asked twice: the first rejected, the second approved; the third reply was over the
    # run's limit, so nobody was asked about it.
    assert [approved for _, approved in reviewer.decided] == [False, True]
    (rejected, _), (approved, _) = reviewer.decided
    request = reviewer.requests[1]
    assert request["details"]["text"] == outputs[approved]["reply"]
    assert request["prompt"].startswith(f"Send this reply to {request['details']['to']} via")

    # Exactly one message reached the SMTP server: the approved one, threaded to its mail.
    assert len(smtp.received) == 1
    rcpt, sent = smtp.received[0]
    original = outputs[approved]["email"]
    assert sent["Message-ID"] == approved
    assert sent["In-Reply-To"] == original["message_id"]
    assert sent["References"].split()[-1] == original["message_id"]
    assert sent["Subject"] == f"Re: {original['subject']}"
    assert sent["From"] == USER and rcpt == [sent["To"]] and sent["To"] in original["sender"]
    assert "X-Llmflow-Key" not in sent  # the draft's bookkeeping header stays in Drafts
    assert sent.get_content().replace("\r\n", "\n").strip() == outputs[approved]["reply"].strip()

    actions = {mid: o["mailbox_actions"][-1] for mid, o in outputs.items()}
    assert actions[approved] == (
        f"sent to {sent['To']} via smtp://127.0.0.1:{smtp.port} as {approved}"
    )
    assert actions[rejected] == "not sent: rejected by reviewer: not this one"
    [third] = set(outputs) - {approved, rejected}
    assert actions[third].startswith("not sent: this run reached its limit of 1 messages")
    # The run store holds it all, with the message's id on the IMAP server.
    stored = {o["reply_message_id"]: o for o in _store_outputs(tmp_path, result["run_id"])}
    assert stored[approved]["mailbox_actions"][-1] == actions[approved]
    assert stored[approved]["mailbox_message"].startswith(f"imaps://127.0.0.1:{imap.port}/INBOX")

    # Never twice: not by a second run, nor by resuming the run, nor by sending it again.
    assert run(url, "--send-replies", smtp.url()) == 0
    assert "no new messages" in capsys.readouterr().err
    assert main(["resume", result["run_id"]]) == 0
    capsys.readouterr()
    _send_again(result["run_id"], outputs[approved], smtp)
    assert len(smtp.received) == 1

    _dry_run(imap, smtp, tmp_path, capsys)


def _send_again(run_id: str, output: dict[str, Any], smtp: SmtpServer) -> None:
    """The send effect run again (a crash after the send, before its checkpoint): the outbox
    knows the Message-ID, so nothing goes out; and the per-day limit counts what was sent."""
    from llmflow.inputs.email import Email
    from llmflow.inputs.imap import reply_message, snapshot_message
    from llmflow.inputs.smtp import draft_digest, parse_target, refusal, send_approved

    original = Email.model_validate(output["email"])
    found = snapshot_message(run_id, original.source)
    assert found is not None
    message = reply_message(original, found[1], output["reply"], sender=USER,
                            message_id=output["reply_message_id"])  # fmt: skip
    target = parse_target(smtp.url())
    line = send_approved(message, target, approved=draft_digest(message), run_id="another")
    assert line.startswith("not sent: already sent")
    day = parse_target(smtp.url("max_per_day=1"))
    assert "reached its limit of 1 messages sent in 24 hours" in str(
        refusal(day, "a-new-run", "<new@example.test>")
    )
    assert refusal(target, "a-new-run", "<new@example.test>") is None


def _dry_run(
    imap: ImapServer, smtp: SmtpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run: nothing asked, sent, flagged or drafted; the mail stays for the next run."""
    imap.deliver(sample("011-return-request-boots.eml"))
    with imap.client() as c:
        c.select("Drafts", readonly=True)
        drafts = c.uid("SEARCH", "ALL")[1][0].split()
    for _ in range(2):  # the second dry run sees the same mail: the first took nothing
        assert run(imap.url(), "--send-replies", smtp.url(), "--dry-run", "--json") == 0
        captured = capsys.readouterr()
        [item] = _json(captured.out)["items"]
        actions = item["output"]["mailbox_actions"]
        assert actions[0].startswith("would flag $llmflow-")
        assert "would draft a reply in Drafts" in actions
        assert actions[-1].startswith("would ask to send to martin.lindqvist@")
        assert f"via smtp://127.0.0.1:{smtp.port}: 'Re: Return" in actions[-1]
        assert "dry run: nothing changed on the mail servers" in captured.err
    assert len(smtp.received) == 1
    with imap.client() as c:
        c.select("Drafts", readonly=True)
        assert c.uid("SEARCH", "ALL")[1][0].split() == drafts
        c.select("INBOX", readonly=True)
        last = c.uid("SEARCH", "ALL")[1][0].split()[-1]
        flags = c.uid("FETCH", last, "(FLAGS)")[1][0]
        assert b"$llmflow" not in flags


def test_smtp_problems_stop_the_run_before_any_work_naming_the_fix(
    imap: ImapServer,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    imap.deliver(sample(MAILS[0]))
    closed = smtp.url().replace(str(smtp.port), str(free_port()))
    cases = [
        (smtp.url(), "wrong", "refused the login", "LLMFLOW_SMTP_PASSWORD"),
        (closed, SMTP_PASSWORD, "cannot connect", "check the host and the port"),
        (smtp.url(query=""), SMTP_PASSWORD, "certificate is not trusted", "?insecure=1"),
        (smtp.url(scheme="smtps"), SMTP_PASSWORD, "TLS handshake failed", "write smtp://"),
        (smtp.url().replace("%40", "%40:pw"), SMTP_PASSWORD, "do not put the password",
         "LLMFLOW_SMTP_PASSWORD"),
        (smtp.url("max_per_day=0"), SMTP_PASSWORD, "must be positive", "max_per_day"),
        ("http://example.test", SMTP_PASSWORD, "not an smtp://", "smtps://"),
    ]  # fmt: skip
    for send, password, problem, fix in cases:
        monkeypatch.setenv("LLMFLOW_SMTP_PASSWORD", password)
        assert run(imap.url(), "--send-replies", send) == 2, send
        err = " ".join(capsys.readouterr().err.split())
        assert problem in err and fix in err, err
        assert "Traceback" not in err
    monkeypatch.setenv("LLMFLOW_SMTP_PASSWORD", SMTP_PASSWORD)
    for args, fix in [
        ([imap.url(), "--send-replies", smtp.url(), "--no-durable"], "drop --no-durable"),
        ([str(SAMPLE_INBOX), "--send-replies", smtp.url()], "give imaps://"),
        ([str(SAMPLE_INBOX), "--dry-run"], "give imaps://"),
    ]:
        assert run(*args) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert fix in err and "Traceback" not in err, err
    # No run took the message: it is still new.
    ledger = Path.cwd() / "home" / "mail" / "ledger.sqlite"
    if ledger.exists():
        db = sqlite3.connect(ledger)
        assert db.execute("select count(*) from messages").fetchone() == (0,)
        db.close()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # it is TLS
def test_implicit_tls_urls_and_passwords(imap: ImapServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmflow.inputs.smtp import check_target, parse_target, smtp_password
    from llmflow.settings import Settings

    with smtp_server(imap, implicit_tls=True) as srv:
        target = check_target(srv.url(scheme="smtps"))
        assert (target.scheme, target.port, target.user) == ("smtps", srv.port, USER)
    target = parse_target("smtp://me%40example.com@smtp.example.com")
    assert (target.port, target.max_per_run, target.max_per_day) == (587, 10, 50)
    assert parse_target("smtps://me@smtp.example.com").port == 465
    assert target.url == "smtp://me%40example.com@smtp.example.com:587"
    with pytest.raises(ConfigError, match="unknown option colour"):
        parse_target("smtp://me@host?colour=red")
    with pytest.raises(ConfigError, match="names no user"):
        parse_target("smtp://host:587")
    # The SMTP password, else the IMAP one (usually the same account's app password).
    assert smtp_password(Settings()) == SMTP_PASSWORD
    monkeypatch.delenv("LLMFLOW_SMTP_PASSWORD")
    assert smtp_password(Settings()) == PASSWORD
    monkeypatch.delenv("LLMFLOW_IMAP_PASSWORD")
    with pytest.raises(ConfigError, match="no SMTP password: set LLMFLOW_SMTP_PASSWORD"):
        smtp_password(Settings())
