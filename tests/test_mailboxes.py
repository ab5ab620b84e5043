"""Real mailboxes: the email triage on a real IMAP server (Dovecot, started by the tests).

The sample inbox is delivered into the server; `llmflow run email-triage imaps://...` and
`llmflow watch` act on it; a second IMAP client checks folders, flags and drafts on the
server. Runs again repeat nothing; a UIDVALIDITY reset is recognised; `watch` killed with
SIGKILL while mail arrives and started again processes every message once. Model calls go to
a fake OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmflow.apps.email_triage import SAMPLE_INBOX
from llmflow.cli import main
from llmflow.errors import ConfigError
from llmflow.inputs.imap import parse_source

from .fake_openai_server import serve
from .imap_server import PASSWORD, ImapServer, imap_server
from .test_cli import answer

LLMFLOW = [str(Path(sys.executable).parent / "llmflow")]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ImapServer]:
    monkeypatch.setenv("LLMFLOW_IMAP_PASSWORD", PASSWORD)
    with imap_server() as srv:
        yield srv


@pytest.fixture
def model() -> Iterator[str]:
    with serve(answer) as (url, _):
        yield url


def sample(*names: str) -> list[bytes]:
    files = [SAMPLE_INBOX / n for n in names] if names else sorted(SAMPLE_INBOX.glob("*.eml"))
    return [f.read_bytes() for f in files]


def contents(srv: ImapServer) -> dict[str, list[dict[str, str]]]:
    """Every message of every folder: flags and the headers that matter, per folder."""
    found: dict[str, list[dict[str, str]]] = {}
    with srv.client() as c:
        _, listing = c.list()
        for line in listing:
            assert isinstance(line, bytes)
            if b"\\Noselect" in line:
                continue
            name = line.decode().rsplit(" ", 1)[-1].strip('"')
            c.select(f'"{name}"', readonly=True)
            _, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER])")
            messages = []
            for part in data:
                if not isinstance(part, tuple):
                    continue
                meta = part[0].decode()
                headers = email.message_from_bytes(part[1], policy=email.policy.default)
                flags = re.search(r"FLAGS \(([^)]*)\)", meta)
                messages.append(
                    {
                        "flags": flags.group(1) if flags else "",
                        **{h: str(headers.get(h) or "") for h in (
                            "Message-ID", "In-Reply-To", "References", "Subject", "From", "To",
                        )},
                    }
                )  # fmt: skip
            found[name] = messages
    return found


def run(url: str, model: str, *extra: str) -> int:
    return main(["run", "email-triage", url, "--base-url", model, "--model", "m", *extra])


def test_triage_acts_in_a_real_mailbox_once(
    server: ImapServer, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.deliver(sample())  # the whole sample inbox, the malformed mail included
    url = server.url(query="insecure=1&file=move")
    assert run(url, model, "--json", "--out", str(tmp_path / "out")) == 3  # one unreadable
    result = json.loads(capsys.readouterr().out)
    outputs = [i["output"] for i in result["items"] if i["ok"]]
    failed = [i for i in result["items"] if not i["ok"]]
    assert len(outputs) == 41 and len(failed) == 1 and "not an email" in failed[0]["error"]

    boxes = contents(server)
    # Every triaged mail was moved to llmflow.<Category> with its keyword; urgent ones flagged.
    moved = {n: m for n, m in boxes.items() if n.startswith("llmflow.")}
    assert sum(len(m) for m in moved.values()) == 41
    for name, messages in moved.items():
        category = name.split(".", 1)[1].lower()
        assert all(f"$llmflow-{category}" in m["flags"] for m in messages)
    urgent = {o["email"]["message_id"] for o in outputs if o["classification"] and
              o["classification"]["priority"] == "urgent"}  # fmt: skip
    flagged = {m["Message-ID"] for ms in moved.values() for m in ms if "\\Flagged" in m["flags"]}
    assert flagged == urgent
    # The unreadable mail stays in the inbox, untouched and unread.
    assert [m["flags"] for m in boxes["INBOX"]] == [""]
    # One draft per drafted reply, threaded to its mail, never sent.
    replies = {o["email"]["message_id"]: o for o in outputs if o["reply"]}
    drafts = boxes["Drafts"]
    assert replies and len(drafts) == len(replies)
    for draft in drafts:
        original = replies[draft["In-Reply-To"]]["email"]
        assert draft["Subject"] == f"Re: {original['subject']}" or (
            original["subject"].lower().startswith("re:")
            and draft["Subject"] == original["subject"]
        )
        assert draft["References"].split()[-1] == draft["In-Reply-To"]
        assert draft["From"] == "alice@example.test"
        assert "\\Draft" in draft["flags"]
    # Every action is in the results with the message's id on the server.
    for o in outputs:
        assert o["mailbox_message"].startswith(
            f"imaps://127.0.0.1:{server.port}/INBOX;UIDVALIDITY="
        )
        assert any(a.startswith("moved to llmflow.") for a in o["mailbox_actions"])

    # Again: nothing new, nothing repeated.
    assert run(url, model) == 0
    assert "no new messages" in capsys.readouterr().err
    assert contents(server) == boxes

    # A new mail: only it is processed.
    server.deliver(sample("001-invoice-overdue.eml"))
    assert run(url, model, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert len(again["items"]) == 1 and again["items"][0]["output"]["reply"]
    assert len(contents(server)["Drafts"]) == len(drafts) + 1
    _default_in_place_and_uidvalidity_reset(server, model, capsys, len(drafts) + 1)


def _default_in_place_and_uidvalidity_reset(
    server: ImapServer, model: str, capsys: pytest.CaptureFixture[str], drafted: int
) -> None:
    """By default mail stays where it is, unread; a UIDVALIDITY reset repeats nothing.
    (Part of the test above: each test pays for training the triage's classifiers.)"""
    first = sample("001-invoice-overdue.eml", "010-tent-pole-broken.eml")
    server.deliver(first, mailbox="Support")
    url = server.url("Support")
    assert run(url, model, "--json") == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert len(items) == 2
    drafted += sum(bool(i["output"]["reply"]) for i in items)
    boxes = contents(server)
    assert all(m["flags"].startswith("$llmflow-") for m in boxes["Support"])  # not \\Seen
    assert len(boxes["Drafts"]) == drafted
    with server.client() as c:
        c.select('"Support"', readonly=True)
        before = c.response("UIDVALIDITY")[1][0]

    # The server renumbers the mailbox (here: deleted and made again with the same mail).
    with server.client() as c:
        assert c.delete('"Support"')[0] == "OK"
    time.sleep(1.1)  # Dovecot's UIDVALIDITY is the time in seconds
    server.deliver([*first, *sample("011-return-request-boots.eml")], mailbox="Support")
    with server.client() as c:
        c.select('"Support"', readonly=True)
        assert c.response("UIDVALIDITY")[1][0] != before

    assert run(url, model, "--json") == 0
    captured = capsys.readouterr()
    items = json.loads(captured.out)["items"]
    assert [i["output"]["email"]["subject"] for i in items] == [
        email.message_from_bytes(sample("011-return-request-boots.eml")[0])["Subject"]
    ]
    assert "UIDVALIDITY of Support changed" in captured.err
    assert "2 processed before were recognised by Message-ID" in captured.err
    assert len(contents(server)["Drafts"]) == drafted + bool(items[0]["output"]["reply"])


def test_connection_problems_are_clear_errors_naming_the_fix(
    server: ImapServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.deliver(sample("001-invoice-overdue.eml"))
    cases = [
        (server.url(), "wrong", "refused the login", "app password"),
        (server.url(query=""), PASSWORD, "certificate is not trusted", "?insecure=1"),
        (server.url().replace(str(server.port), str(_closed_port())), PASSWORD,
         "cannot connect", "check the host and the port"),
        (server.url(), "", "no IMAP password", "LLMFLOW_IMAP_PASSWORD"),
        (server.url("Nope"), PASSWORD, "no mailbox 'Nope'", "INBOX"),
        (server.url().replace("alice%40", "alice%40:pw@"), PASSWORD, "do not put the password",
         "LLMFLOW_IMAP_PASSWORD"),
    ]  # fmt: skip
    for url, password, problem, fix in cases:
        monkeypatch.setenv("LLMFLOW_IMAP_PASSWORD", password)
        assert main(["run", "email-triage", url, "--model", "openai:gpt-4.1-mini"]) == 2, url
        err = " ".join(capsys.readouterr().err.split())
        assert problem in err and fix in err, err
        assert "Traceback" not in err
    # Nothing was taken by the failed runs: the message is still there to process.
    assert len(contents(server)["INBOX"]) == 1


def _closed_port() -> int:
    from .imap_server import free_port

    return free_port()


def test_mailbox_urls_are_parsed_and_checked() -> None:
    source = parse_source(
        "imaps://me%40example.com@imap.example.com/INBOX?unseen=1&since=2026-12-01&limit=5"
    )
    assert (source.user, source.host, source.port, source.mailbox) == (
        "me@example.com", "imap.example.com", 993, "INBOX",
    )  # fmt: skip
    assert source.search() == ["UNSEEN", "SINCE", "01-Dec-2026"]
    assert source.limit == 5 and not source.insecure
    assert source.location == "imaps://imap.example.com:993/INBOX?unseen=1&since=2026-12-01&limit=5"
    assert parse_source("imap://bob@host:1143/Archive/2026").port == 1143
    assert parse_source("imap://bob@host/Archive/2026").mailbox == "Archive/2026"
    for bad, message in [
        ("imaps://host/INBOX", "names no user"),
        ("imaps://u:pw@host/INBOX", "do not put the password"),
        ("imaps://u@host/INBOX?colour=red", "unknown option colour"),
        ("imaps://u@host/INBOX?since=yesterday", "since=YYYY-MM-DD"),
        ("imaps://u@host/INBOX?file=delete", "file must be none, copy or move"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_source(bad)


def _watch(server: ImapServer, model: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "LLMFLOW_IMAP_PASSWORD": PASSWORD}
    log = (tmp_path / f"watch-{time.monotonic_ns()}.log").open("w")
    return subprocess.Popen(
        [*LLMFLOW, "watch", "email-triage", server.url(), "--base-url", model, "--model", "m",
         "--poll", "0.5", "--out", str(tmp_path / "out")],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip


def _processed(server: ImapServer) -> list[str]:
    """The Message-IDs of the inbox's mails that carry a triage keyword."""
    return [m["Message-ID"] for m in contents(server)["INBOX"] if "$llmflow-" in m["flags"]]


def _until(check: object, timeout: float, what: str, tmp_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("watch-*.log")))
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.3)


def test_watch_killed_while_mail_arrives_processes_every_message_once(
    server: ImapServer, model: str, tmp_path: Path
) -> None:
    names = sorted(p.name for p in SAMPLE_INBOX.glob("0[0-3]*.eml"))[:12]
    first, later = names[:8], names[8:]
    server.deliver(sample(*first))
    watcher = _watch(server, model, tmp_path)
    try:
        _until(lambda: len(_processed(server)) >= 2, 900, "the first mails", tmp_path)
        server.deliver(sample(*later[:2]))  # mail arrives while it works
        watcher.send_signal(signal.SIGKILL)
        watcher.wait(timeout=10)
        server.deliver(sample(later[2]))
        watcher = _watch(server, model, tmp_path)
        _until(lambda: len(_processed(server)) == 11, 900, "the mails so far", tmp_path)
        time.sleep(2)  # now it waits for mail (IDLE): the last one arrives
        server.deliver(sample(later[3]))
        _until(lambda: len(_processed(server)) == 12, 300, "the last mail", tmp_path)
        time.sleep(1.5)  # a repeat would show now
    finally:
        watcher.send_signal(signal.SIGKILL)
        watcher.wait(timeout=10)
    boxes = contents(server)
    keywords = [m["flags"] for m in boxes["INBOX"]]
    assert all(len(re.findall(r"\$llmflow-", f)) == 1 for f in keywords), keywords
    threaded = Counter(m["In-Reply-To"] for m in boxes["Drafts"])
    assert threaded and max(threaded.values()) == 1, threaded  # no reply drafted twice
    # Every message is one item of one run (the run store), none twice.
    db = sqlite3.connect(tmp_path / "home" / "llmflow.db")
    rows = db.execute("select key, count(*) from items group by key").fetchall()
    db.close()
    assert len(rows) == 12 and all(n == 1 for _, n in rows), rows
