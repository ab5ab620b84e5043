"""Hostile mails against the email triage: a mail is from anyone on the internet, and its
headers and text must not write into the digest's structure, the terminal, a reply's headers
or the IMAP commands the triage sends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmflow import ModelRequest, ModelResponse, RunStore, run_batch
from llmflow.apps.email_triage import build, load_inbox
from llmflow.apps.email_triage.workflow import Triage
from llmflow.cli import main
from llmflow.inputs.email import RawEmail, parse_email
from llmflow.inputs.mailbox_actions import WIRE, MessageActions, act_in_mailbox, reply_message
from llmflow.inputs.mailbox_source import MailboxRef
from llmflow.testing import ScriptedModel, scripted_gateway

from .fake_openai_server import serve
from .imap_server import PASSWORD, USER, ImapServer, imap_server
from .mails import SUPPORT, message, parsed

HOSTILE_SUBJECT = (
    "=?utf-8?q?Refund_=1B[2J![](http://evil.example/s.png)_<script>x</script>"
    "=0A=0A##_Urgent_(9)=0A=0A-_**fake_entry**?="
)


def raw_mail(subject: str, body: str, *, sender: str = "eve@evil.example") -> bytes:
    return (
        f"From: {sender}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n"
        f"Message-ID: <m1@evil.example>\r\n\r\n{body}\r\n"
    ).encode()


def local_model() -> ScriptedModel:
    def reply(request: ModelRequest) -> str | ModelResponse:
        if request.choices:
            label = "support" if "spam" in request.choices else "urgent"
            return ModelResponse(text=label, choice_probs={label: 1.0})
        return "A short text."

    return ScriptedModel(reply)


async def triage_digest(folder: Path, tmp_path: Path) -> str:
    """The digest.md of the triage run on `folder` (the local model scripted)."""
    model = local_model()
    gateway = scripted_gateway(model)
    gateway.register("local", model)
    out = tmp_path / "out"
    batch = await run_batch(
        build(),
        load_inbox(folder),
        gateway=gateway,
        model="local",
        store=RunStore(tmp_path / "runs.db"),
        out_dir=out,
    )
    assert batch.status == "ok", [r.error for r in batch.failed]
    return (out / "digest.md").read_text()


async def test_the_digest_shows_hostile_headers_and_text_as_plain_text(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.eml").write_bytes(
        raw_mail(
            HOSTILE_SUBJECT,
            "# Heading\r\n\r\n<img src=http://evil.example/b.png> Where is my order NW-12345? "
            "[click](http://evil.example/c) | a | b |",
            sender='"[Boss](http://evil.example/d) \\"x" <eve@evil.example>',
        )
    )
    digest = await triage_digest(folder, tmp_path)
    assert "\x1b" not in digest
    # One entry, whose lines start as the digest writes them: no heading or entry of the mail's.
    entries = digest.split("\n## ", 2)[-1].splitlines()[2:]
    assert len([e for e in entries if e.startswith("- ")]) == 1
    assert all(e.startswith(("- **", "  ")) for e in entries if e)
    assert not any(e.lstrip().startswith("#") for e in entries)
    # No image, link or HTML tag Markdown would read: each `[`, `]`, `<`, `!`, `|` escaped.
    for mark in ("[", "]", "<", ">", "!", "|", "*"):
        body = "\n".join(entries).replace("- **", "", 1).rsplit("**", 1)
        assert all(re.search(rf"(?<!\\){re.escape(mark)}", b) is None for b in body), mark
    assert "http://evil.example/s.png" in digest  # shown, as text


async def test_the_digest_says_when_replies_go_to_another_domain_than_the_from(
    tmp_path: Path,
) -> None:
    """A spoofed colleague: From our own domain, Reply-To the attacker's. Whoever answers
    from the digest (or their mail client) would write to the attacker."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    msg = message(
        "Please approve the refunds for orders NW-11111 and NW-22222 today and confirm.",
        sender="Alice Boss <alice@northwind-outfitters.example>",
        subject="Approve refunds",
    )
    msg["Reply-To"] = '"alice@northwind-outfitters.example" <attacker@evil.example>'
    (folder / "a.eml").write_bytes(msg.as_bytes())
    own = message("Where is order NW-12345?", sender="bob@cust.example", subject="Order")
    own["Reply-To"] = "Bob <bob.private@cust.example>"
    (folder / "b.eml").write_bytes(own.as_bytes())
    digest = await triage_digest(folder, tmp_path)
    assert digest.count("Replies go to") == 1
    assert "  Replies go to attacker@evil.example (its Reply-To), at another domain" in digest


def test_the_run_table_shows_a_mail_s_text_not_markup_or_escape_sequences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    hostile = "Please help \x1b[2J[link=http://evil.example]with[/link] [on red]my order[/]."
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.eml").write_bytes(raw_mail("Order", hostile))

    def answer(body: dict[str, Any]) -> str:
        if body.get("logprobs"):
            category = "billing, support, sales, internal, spam" in body["messages"][0]["content"]
            return "support" if category else "normal"
        if (body.get("response_format") or {}).get("json_schema", {}).get("name") == "extract":
            return json.dumps(
                {"request": hostile, "deadline": None, "order_numbers": [],
                 "invoice_numbers": [], "needs_reply": False}
            )  # fmt: skip
        return hostile

    with serve(answer) as (url, _):
        args = ["run", "email-triage", str(folder), "--base-url", url, "--model", "m"]
        assert main([*args, "--out", str(tmp_path / "out")]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown
    assert "[link=http://evil.example]with[/link] [on red]my order[/]." in shown


def test_a_reply_to_a_subject_with_cr_lf_is_one_subject_header() -> None:
    mail = parsed(message("Where is my order?", sender="eve@evil.example", subject="x"))
    mail = mail.model_copy(
        update={"subject": "Order\r\nBcc: victim@evil.example", "message_id": "<a@b>\r\nX: y"}
    )
    reply = reply_message(mail, b"", "Hello", sender=SUPPORT, message_id="<r@llmflow.invalid>")
    data = reply.as_bytes(policy=WIRE)
    assert b"\r\nBcc:" not in data and b"\r\nX:" not in data
    assert str(reply["Subject"]) == "Re: Order Bcc: victim@evil.example"
    assert reply["In-Reply-To"] == "<a@b>" and reply["References"] == "<a@b>"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImapServer]:
    monkeypatch.setenv("LLMFLOW_IMAP_PASSWORD", PASSWORD)
    with imap_server() as srv:
        yield srv


def test_a_message_id_decoded_to_an_imap_command_is_not_sent_to_the_server(
    server: ImapServer,
) -> None:
    """An encoded word decodes to CR LF and a second IMAP command; as the Message-ID of an
    IMAP search (copy=, move=, a changed UIDVALIDITY), it ended the command line: the search
    failed (the message was never filed) and a server reading on ran the mail's command."""
    raw = raw_mail("Hello", "Where is my order?").replace(
        b"<m1@evil.example>", b"=?utf-8?q?<x@evil.example>=0D=0AX1_CREATE_pwned?="
    )
    server.deliver([raw])
    mail = parse_email(RawEmail(source="1-1.eml", data=raw))
    assert mail.message_id == "<x@evil.example> X1 CREATE pwned"  # the reader: one line
    # and the actions hold even for an Email made elsewhere with the decoded CR LF
    mail = mail.model_copy(update={"message_id": "<x@evil.example>\r\nX1 CREATE pwned"})
    with server.client() as c:
        c.select("INBOX")
        _, validity = c.response("UIDVALIDITY")
    ref = MailboxRef(
        url=server.url(), user=USER, mailbox="INBOX", uidvalidity=int(validity[0]), uid=1
    )
    actions = MessageActions(copy_to="llmflow/Support")
    assert act_in_mailbox(mail, actions, ref=ref, raw=raw, key="k") == ["copied to llmflow.Support"]
    with server.client() as c:
        _, listing = c.list()
    assert not any(b"pwned" in line for line in listing if isinstance(line, bytes))


def test_the_approval_prompt_says_when_a_reply_goes_to_another_domain_than_the_from() -> None:
    """A spoofed colleague: From our own domain, Reply-To the attacker's; the subject tries
    to add its own lines to the prompt."""
    from llmflow.apps.email_triage.mailbox import approval_prompt

    msg = message(
        "Please approve the refunds for orders NW-11111 and NW-22222 today.",
        sender="Alice Boss <alice@northwind-outfitters.example>",
        subject="x",
    )
    msg["Reply-To"] = '"alice@northwind-outfitters.example" <attacker@evil.example>'
    mail = parsed(msg).model_copy(update={"subject": "Refunds\n\nApproved by Alice already"})
    triage = Triage(email=mail, reply="Done.\n\nKind regards,\nNorthwind Outfitters")
    prompt = approval_prompt(triage, ["attacker@evil.example"], "Re: Refunds", "smtp.example")
    lines = prompt.splitlines()
    assert lines[0] == "Send this reply to attacker@evil.example via smtp.example?"
    assert lines[1].startswith("Note: attacker@evil.example is not at the domain of the mail's")
    assert "In reply to: Alice Boss <alice@northwind-outfitters.example>: Refunds Approved" in (
        prompt
    )
    # A reply to the sender's own address asks no more than before.
    ordinary = triage.model_copy(update={"email": mail.model_copy(update={"reply_to": None})})
    prompt = approval_prompt(ordinary, ["alice@northwind-outfitters.example"], "Re: x", "s")
    assert "Note:" not in prompt


def test_the_approval_prompt_has_no_control_characters_from_the_mail() -> None:
    """`llmflow approvals list` prints the prompt in a terminal: a subject's ESC sequences
    (clear the screen, hide text) or bidi overrides must not reach it."""
    from llmflow.apps.email_triage.mailbox import approval_prompt

    msg = message("Where is my order?", sender="eve@evil.example", subject="x")
    mail = parsed(msg).model_copy(
        update={"subject": "Order \x1b[2J\x1b[8mhidden\u202e", "sender": "Eve\x1b[0m <e@x.example>"}
    )
    triage = Triage(email=mail, reply="Hello.\n\nKind regards,\nNorthwind Outfitters")
    prompt = approval_prompt(triage, ["e@x.example"], "Re: Order \x1b[2J", "smtp.example")
    assert "\x1b" not in prompt and "\u202e" not in prompt
    assert "In reply to: Eve [0m <e@x.example>: Order [2J [8mhidden" in prompt


def test_a_line_break_is_never_quoted_into_an_imap_command() -> None:
    # imaplib sends a quoted string as it is: a CR LF in it would end the command there
    from llmflow.errors import RunError
    from llmflow.inputs.imap_connection import imap_quote

    assert imap_quote('Archive/"Q4"') == '"Archive/\\"Q4\\""'
    for bad in ("<a@b>\r\nA1 DELETE INBOX", "x\ny", "x\0y"):
        with pytest.raises(RunError, match="line break or NUL"):
            imap_quote(bad)


def test_untrusted_text_is_one_plain_line_and_other_domains_are_named() -> None:
    from llmflow.untrusted import one_line, other_domains

    assert one_line("Re: hi\r\n## Urgent\x1b[2J\u202eevil", 14) == "Re: hi ## Urg…"
    sender = "Lena <lena@northwind-outfitters.example>"
    assert other_domains(sender, "Lena <lena@NORTHWIND-outfitters.example>") == []
    assert other_domains(sender, ["a@evil.example", "b@northwind-outfitters.example"]) == [
        "a@evil.example"
    ]


def test_a_line_break_encoded_in_the_from_name_does_not_make_the_mail_unreadable() -> None:
    # Python's address parser refuses the decoded CR LF; the mail was lost as unreadable
    raw = (
        b"From: =?utf-8?q?Eve=0D=0ABcc:_x@evil.example?= <eve@evil.example>\r\n"
        b"To: support@northwind-outfitters.example\r\nSubject: Refund\r\n"
        b"Date: Mon, 07 Dec 2026 10:00:00 +0100\r\n\r\nPlease refund order NW-12345.\r\n"
    )
    mail = parse_email(RawEmail(source="eve.eml", data=raw))
    assert mail.sender == "Eve Bcc: x@evil.example <eve@evil.example>"
    assert mail.to == ["support@northwind-outfitters.example"]
    assert "NW-12345" in mail.body


def test_parts_nested_too_deep_are_a_clear_error_not_a_crash() -> None:
    from llmflow.errors import InputError

    depth = 3000
    head = b"From: a@b.example\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    nest = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    with pytest.raises(InputError, match="nested too deep"):
        parse_email(RawEmail(source="deep.eml", data=head + nest + b"\r\nx\r\n"))
