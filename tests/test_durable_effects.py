"""Exactly-once effects where they matter: the email-triage job's `act` and agents' tools.

The CLI is killed with SIGKILL (inside an effect, after it took effect but before its
checkpoint; or at a model call) and `llmflow resume` finishes the run: results.jsonl holds
each mail once, a side-effect tool refunds once, and a tool that needs approval waits across
the restart for `llmflow reject`, whose comment the model then hears. Model calls go to a
real HTTP server in the test process, which counts them across processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmflow import ConfigError, ModelRequest, agent, run, tool
from llmflow.durable import current_idempotency_key
from llmflow.testing import ScriptedModel, scripted_gateway

from .fake_openai_server import serve
from .test_cli import answer as triage_answer
from .test_durable import LLMFLOW, _cli, _env, _ledger

MAILS = [
    "001-invoice-overdue.eml",
    "009-where-is-my-order.eml",
    "034-phishing-verify-account.eml",
    "099-malformed.eml",
]


class Server:
    """The fake model's side: counts requests, and kills the CLI at the `kill_at`-th."""

    def __init__(self, reply: Callable[[dict[str, Any]], str | dict[str, Any]]) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.kill_at: int | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.lock = threading.Lock()

    def answer(self, body: dict[str, Any]) -> str | dict[str, Any]:
        with self.lock:
            self.requests.append(body)
            if self.kill_at == len(self.requests) and self.proc is not None:
                os.kill(self.proc.pid, signal.SIGKILL)
                time.sleep(0.5)  # the reply goes nowhere: the client is dead
        return self.reply(body)


def _start(args: list[str], env: dict[str, str], server: Server) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*LLMFLOW, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    server.proc = proc
    return proc


def _json(output: str) -> Any:
    return json.loads(output[output.index("{") : output.rindex("}") + 1])


# -- email triage -------------------------------------------------------------------------


@pytest.fixture
def triage_server() -> Iterator[tuple[str, Server]]:
    server = Server(triage_answer)
    with serve(server.answer) as (url, _):
        yield url, server


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory holding email triage's trained classifiers (training takes ~30 s
    here; each test copies them rather than training again)."""
    from llmflow.apps.email_triage import workflow

    home = tmp_path_factory.mktemp("trained")
    workflow.build(home=home)
    return home


@pytest.fixture
def mails(tmp_path: Path, inbox: Path, trained_home: Path) -> Path:
    home = Path(os.environ["LLMFLOW_HOME"])
    shutil.copytree(trained_home / "classifiers", home / "classifiers")
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in MAILS:
        shutil.copy(inbox / name, folder / name)
    return folder


def _results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "kill",
    [
        # The second mail's act: the first mail is done, the others not started.
        pytest.param({"LLMFLOW_TEST_KILL": "act:009-where-is-my-order.eml"}, id="inside act"),
        pytest.param({"kill_at": 5}, id="at a model call mid-item"),
    ],
)
def test_email_triage_killed_and_resumed_files_each_mail_exactly_once(
    kill: dict[str, Any], triage_server: tuple[str, Server], mails: Path, tmp_path: Path
) -> None:
    url, server = triage_server
    out = tmp_path / "out"
    env = _env(tmp_path, **{k: v for k, v in kill.items() if k != "kill_at"})
    server.kill_at = kill.get("kill_at")
    args = ["run", "tests.durable_flows:email_triage", str(mails), "--base-url", url,
            "--model", "m", "--out", str(out), "--concurrency", "1", "--json"]  # fmt: skip
    proc = _start(args, env, server)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, stdout + stderr
    if "LLMFLOW_TEST_KILL" in kill:  # it died after appending, before the checkpoint
        assert (tmp_path / "ledger.killed").read_text() == "act"
        assert (out / "results.jsonl").read_text().count("\n") >= 1
    server.kill_at = None
    calls_before = len(server.requests)

    code, output = _cli(["resume", "--json"], env)
    assert code == 3, output  # finished; the malformed mail is the one failed item
    result = _json(output)
    assert result["status"] == "partial"
    records = _results(out)
    assert Counter(r["file"] for r in records) == Counter(MAILS)  # each mail exactly once
    assert len({r["_idempotency_key"] for r in records}) == len(MAILS)
    by_file = {r["file"]: r for r in records}
    assert "not an email" in by_file["099-malformed.eml"]["error"]
    for name in MAILS[:3]:
        assert (out / by_file[name]["filed_as"]).read_bytes() == (mails / name).read_bytes()
    assert by_file["034-phishing-verify-account.eml"]["category"] == "spam"
    digest = (out / "digest.md").read_text()
    assert "3 emails triaged, 1 could not be read." in digest
    # The resume made only the calls the killed process had not finished: none of those it
    # got an answer to again (the last one's answer went nowhere), and no more than the
    # calls left (the killed one and the 4 not started: mail 009's priority goes to the LLM,
    # the ml tier being less sure of it since the training mails in 13 other languages).
    finished = server.requests[: calls_before - 1]
    resumed = server.requests[calls_before:]
    assert not [r for r in resumed if r in finished]
    assert len(resumed) <= 5

    # Finishing again (resuming the finished run) changes nothing: the digest is rewritten
    # whole, and the failed mail's line is not appended twice.
    code, output = _cli(["resume", result["run_id"], "--json"], env)
    assert code == 3, output
    assert _results(out) == records
    assert (out / "digest.md").read_text() == digest


# -- agent tools --------------------------------------------------------------------------


def agent_reply(body: dict[str, Any]) -> str | dict[str, Any]:
    """First turn: call `refund` for the item; then answer with what the tool said."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    item = user.split("|")[0]
    said = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if not said:
        call = {"name": "refund", "arguments": json.dumps({"order": item})}
        return {"tool_calls": [{"id": f"call-{item}", "type": "function", "function": call}]}
    return f"{item}: {said[-1]}"


@pytest.fixture
def agent_server() -> Iterator[tuple[str, Server]]:
    server = Server(agent_reply)
    with serve(server.answer) as (url, _):
        yield url, server


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        (folder / f"{i}.txt").write_text(f"i{i}|please refund")
    return folder


def _agent_args(url: str, inputs: Path, tmp_path: Path) -> list[str]:
    return ["run", "tests.durable_flows:build_agent", str(inputs), "--base-url", url, "--model",
            "m", "--out", str(tmp_path / "out"), "--concurrency", "1", "--json"]  # fmt: skip


def _attempts(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "ledger.attempts"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    ("kill", "tool_runs"),
    [
        pytest.param({"LLMFLOW_TEST_KILL": "tool:i1"}, 3, id="inside the tool, after it refunded"),
        pytest.param({"kill_at": 4}, 2, id="at the model call after the tool"),
    ],
)
def test_a_side_effect_tool_refunds_once_across_a_kill_and_resume(
    kill: dict[str, Any],
    tool_runs: int,
    agent_server: tuple[str, Server],
    orders: Path,
    tmp_path: Path,
) -> None:
    url, server = agent_server
    env = _env(tmp_path, **{k: v for k, v in kill.items() if k != "kill_at"})
    server.kill_at = kill.get("kill_at")
    proc = _start(_agent_args(url, orders, tmp_path), env, server)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, stdout + stderr
    server.kill_at = None

    code, output = _cli(["resume", "--json"], env)
    assert code == 0, output
    items = _json(output)["items"]
    assert [i["output"] for i in items] == ["i0: refunded i0", "i1: refunded i1"]
    assert sorted(r["item"] for r in _ledger(tmp_path)) == ["i0", "i1"]  # one refund each
    attempts = _attempts(tmp_path)
    # A completed call is not made again; the one cut off runs again with the same key.
    assert len(attempts) == tool_runs
    keys = {key for _, key in attempts}
    assert len(keys) == 2
    assert all(key.endswith("/agent-refunds/support/refund[1]") for key in keys)
    # Each item asked the model twice, once more for the call that was in flight at a kill.
    assert len(server.requests) == 4 + ("kill_at" in kill)


def test_tools_wait_for_approval_across_a_restart_then_run_or_tell_the_model_why_not(
    agent_server: tuple[str, Server], orders: Path, tmp_path: Path
) -> None:
    url, server = agent_server
    env = _env(tmp_path, LLMFLOW_TEST_TOOL_APPROVAL="1")
    args = [*_agent_args(url, orders, tmp_path)[:-3], "--concurrency", "2", "--json"]
    proc = _start(args, env, server)
    waiting: list[dict[str, Any]] = []
    deadline = time.time() + 60
    while len(waiting) < 2 and time.time() < deadline:
        time.sleep(0.5)
        code, output = _cli(["approvals", "list", "--json"], env)
        assert code == 0, output
        waiting = sorted(json.loads(output[output.index("[") :]), key=lambda w: w["item"])
    assert len(waiting) == 2, waiting
    assert [w["step"] for w in waiting] == ["agent-refunds/support/refund[1]"] * 2
    assert [w["prompt"] for w in waiting] == ["refund(order='i0')", "refund(order='i1')"]
    assert waiting[0]["details"] == {"tool": "refund", "arguments": {"order": "i0"}}
    proc.kill()  # SIGKILL while both wait
    proc.communicate()
    assert not _ledger(tmp_path) and not _attempts(tmp_path)  # nothing before the approval

    code, output = _cli(["approve", waiting[0]["item"], "--comment", "fine"], env)
    assert code == 0, output
    code, output = _cli(["reject", waiting[1]["item"], "--comment", "over the limit"], env)
    assert code == 0, output
    code, output = _cli(["resume", "--json"], env)
    assert code == 0, output  # a rejected tool call does not fail the item
    approved, rejected = (i["output"] for i in _json(output)["items"])
    assert approved == "i0: refunded i0"
    assert rejected.startswith("i1: Not done: the call of refund was rejected by ")
    assert rejected.endswith(": over the limit. The tool did not run; tell the user, and do "
                             "not try it again.")  # fmt: skip
    assert [r["item"] for r in _ledger(tmp_path)] == ["i0"]  # the rejected one never ran
    assert [item for item, _ in _attempts(tmp_path)] == ["i0"]
    assert len(server.requests) == 4  # the first calls were not made again after the restart


# -- outside durable runs -----------------------------------------------------------------


def _refund_then_answer(request: ModelRequest) -> Any:
    from .test_agent_step import call

    if not [m for m in request.messages if m.role == "tool"]:
        return call("pay", {"order": "NW-1"})
    return next(m.content for m in request.messages if m.role == "tool")


async def test_a_side_effect_tool_has_an_idempotency_key_outside_durable_runs() -> None:
    keys: list[str | None] = []

    def pay(order: str) -> str:
        """Pay an order back."""
        keys.append(current_idempotency_key())
        return f"paid {order}"

    step = agent("support", instructions="Help.", tools=[tool(pay, side_effect=True)])
    out = await run(step, "x", gateway=scripted_gateway(ScriptedModel(_refund_then_answer)))
    assert out == "paid NW-1"
    assert len(keys) == 1 and keys[0] is not None and keys[0].endswith("/support/pay[1]")


async def test_a_tool_that_needs_approval_fails_clearly_outside_a_durable_run() -> None:
    paid: list[str] = []

    def pay(order: str) -> str:
        """Pay an order back."""
        paid.append(order)
        return "paid"

    step = agent("support", instructions="Help.", tools=[tool(pay, needs_approval=True)])
    with pytest.raises(ConfigError) as info:
        await run(step, "x", gateway=scripted_gateway(ScriptedModel(_refund_then_answer)))
    message = str(info.value)
    assert "support/pay[1]" in message and "'pay' needs approval" in message
    assert "llmflow run" in message and "LLMFLOW_DURABLE=0" in message
    assert paid == []


def test_an_agent_file_marks_a_tool_as_needing_approval(tmp_path: Path) -> None:
    from llmflow.workflow_files import load_agent_file

    (tmp_path / "tools.py").write_text(
        'def pay(order: str) -> str:\n    """Pay an order back."""\n    return "paid"\n'
    )
    (tmp_path / "support.md").write_text(
        "---\ntools:\n  - {function: tools:pay, side_effect: true, needs_approval: true}\n"
        "---\nHelp.\n"
    )
    support = load_agent_file(tmp_path / "support.md")
    assert [(t.name, t.side_effect, t.needs_approval) for t in support.tools] == [
        ("pay", True, True)
    ]


# -- append_line_once ---------------------------------------------------------------------


def test_append_line_once_sees_lines_other_writers_added_and_survives_a_torn_line(
    tmp_path: Path,
) -> None:
    from llmflow.durable import append_line_once

    path = tmp_path / "results.jsonl"
    assert append_line_once(path, {"n": 1}, key="k1")
    assert not append_line_once(path, {"n": 1}, key="k1")
    # Another process appends a keyed line, then dies half-way through the next one.
    with path.open("a") as f:
        f.write(json.dumps({"n": 2, "_idempotency_key": "k2"}) + "\n")
        f.write('{"n": 3, "_idempot')
    assert not append_line_once(path, {"n": 2}, key="k2")
    assert append_line_once(path, {"n": 3}, key="k3")
    assert not append_line_once(path, {"n": 3}, key="k3")
    lines = path.read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines if line.endswith("}")] == [1, 2, 3]
    assert lines[2] == '{"n": 3, "_idempot'  # the torn line stays on a line of its own
    # A file replaced by another is read again from its start.
    path.unlink()
    assert append_line_once(path, {"n": 1}, key="k1")


# -- the support-chat template's refund ---------------------------------------------------


def test_support_chat_refund_made_again_with_its_key_answers_the_same_and_refunds_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from llmflow.steps.idempotency import idempotency_key

    from .test_templates_tools import load_tools

    monkeypatch.setenv("SUPPORT_CHAT_DB", str(tmp_path / "shop.db"))
    shop = load_tools("support-chat")
    key = "run/0/support-chat/answer/request_refund[2]"
    with idempotency_key(key):
        first = shop.request_refund("NW-1042", "broken pole")
    with idempotency_key(key):  # the same call, run again after a crash cut it off
        assert shop.request_refund("NW-1042", "broken pole") == first
    with (
        idempotency_key("run/0/support-chat/answer/request_refund[3]"),
        pytest.raises(ValueError, match="already refunded"),
    ):
        shop.request_refund("NW-1042", "asking again")  # another call is refused
    with pytest.raises(ValueError, match="already refunded"):
        shop.request_refund("NW-1042", "no key at all")
    with sqlite3.connect(tmp_path / "shop.db") as db:
        assert db.execute("SELECT order_id, amount_eur FROM refunds").fetchall() == [
            ("NW-1042", 249.0)
        ]
        assert db.execute("SELECT * FROM refund_keys").fetchall() == [(key, "NW-1042")]
