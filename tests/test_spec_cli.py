"""The workflow-file commands as a user runs them: validate, templates, new, run on a file,
and chat through a pseudo-terminal (on a scripted OpenAI-compatible server, and once on the
real embedded model)."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmflow.cli import main
from llmflow.cli.run import prepare
from llmflow.workflow_files import TEMPLATES

from .fake_openai_server import serve

LLMFLOW = str(Path(sys.executable).parent / "llmflow")

WORKFLOW = """\
name: shout
description: Shout a ticket, then answer it.
input: {type: jsonl, key: id}
steps:
  - id: loud
    kind: code
    function: tools:shout
    input: input.body
  - id: answer
    kind: llm
    instructions: "Answer the ticket."
    prompt: "Ticket: {{ steps.loud }}"
result: {loud: steps.loud, answer: steps.answer}
output:
  columns: {answer: output.answer}
"""

TOOLS = "def shout(text: str) -> str:\n    return text.upper()\n"


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    root = tmp_path / "shout"
    root.mkdir()
    (root / "workflow.yaml").write_text(WORKFLOW)
    (root / "tools.py").write_text(TOOLS)
    return root


def test_validate_ok_and_bad(
    workflow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(workflow)]) == 0
    assert "ok: " in capsys.readouterr().out
    bad = workflow / "bad.yaml"
    bad.write_text(WORKFLOW.replace("function: tools:shout", "function: tools:shuot"))
    assert main(["validate", str(bad)]) == 2
    errors = capsys.readouterr().err
    assert "bad.yaml:7:15: error: tools.py has no 'shuot' (did you mean 'shout'?)" in errors
    assert "1 problem found" in errors


def test_validate_an_agent_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agent = tmp_path / "helper.md"
    agent.write_text("---\ntools: [now]\n---\nHelp.\n")
    assert main(["validate", str(agent)]) == 0
    assert "agent 'helper', 1 tool" in capsys.readouterr().out
    agent.write_text("---\ntols: [now]\n---\nHelp.\n")
    assert main(["validate", str(agent)]) == 2
    assert "helper.md:2:1: error: unknown key 'tols'" in capsys.readouterr().err


def test_templates_lists_each_folder_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["templates"]) == 0
    listed = capsys.readouterr().out
    folders = [p.name for p in TEMPLATES.iterdir() if (p / "workflow.yaml").is_file()]
    assert folders
    for name in folders:
        assert name in listed


def test_new_copies_a_template_and_refuses_a_non_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mine"
    assert main(["new", "support-chat", str(target)]) == 0
    assert (target / "workflow.yaml").read_text() == (
        TEMPLATES / "support-chat" / "workflow.yaml"
    ).read_text()
    assert not list(target.rglob("__pycache__"))
    assert main(["validate", str(target)]) == 0
    capsys.readouterr()
    assert main(["new", "support-chat", str(target)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["new", "suport-chat", str(tmp_path / "other")]) == 2
    assert "did you mean 'support-chat'" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_run_a_workflow_file(
    workflow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "tickets.jsonl"
    inputs.write_text('{"id": "t1", "body": "help"}\n{"id": "t2", "body": "thanks"}\n')

    def answer(body: dict[str, Any]) -> str:
        return f"re: {body['messages'][-1]['content']}"

    with serve(answer) as (url, received):
        code = main(["run", str(workflow), str(inputs), "--base-url", url, "--model", "m",
                     "--out", str(tmp_path / "out"), "--json"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [i["output"] for i in result["items"]] == [
        {"loud": "HELP", "answer": "re: Ticket: HELP"},
        {"loud": "THANKS", "answer": "re: Ticket: THANKS"},
    ]
    assert len(received) == 2
    rows = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(r)["key"] for r in rows] == ["t1", "t2"]


def test_run_a_file_with_mistakes_exits_2_before_any_call(
    workflow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workflow / "workflow.yaml").write_text(WORKFLOW.replace("steps.loud }}", "steps.lod }}"))
    inputs = tmp_path / "tickets.jsonl"
    inputs.write_text('{"id": "t1", "body": "help"}\n')
    assert main(["run", str(workflow), str(inputs)]) == 2
    assert "workflow.yaml:12:31: unknown step 'lod'" in capsys.readouterr().err


def test_run_names_an_unknown_model_in_the_file(
    workflow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workflow / "workflow.yaml").write_text(
        WORKFLOW.replace('    instructions: "Answer', '    model: gtp-4\n    instructions: "Answer')
    )
    inputs = tmp_path / "tickets.jsonl"
    inputs.write_text('{"id": "t1", "body": "help"}\n')
    assert main(["run", str(workflow), str(inputs)]) == 2
    assert "workflow.yaml:11:12: unknown model 'gtp-4'" in capsys.readouterr().err


def test_the_files_model_and_concurrency_are_defaults_the_command_line_overrides(
    workflow: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workflow / "workflow.yaml").write_text(
        WORKFLOW.replace("input: {type", "model: m2\nlimits: {concurrency: 7}\ninput: {type")
    )
    inputs = tmp_path / "tickets.jsonl"
    inputs.write_text('{"id": "t1", "body": "help"}\n')
    url = "http://127.0.0.1:9/v1"
    job = prepare(str(workflow), inputs, model=None, base_url=url, concurrency=None, cache=True)
    assert (job.settings.model, job.concurrency) == ("m2", 7)
    job = prepare(str(workflow), inputs, model="m3", base_url=url, concurrency=2, cache=True)
    assert (job.settings.model, job.concurrency) == ("m3", 2)
    monkeypatch.setenv("LLMFLOW_MODEL", "m4")
    job = prepare(str(workflow), inputs, model=None, base_url=url, concurrency=None, cache=True)
    assert job.settings.model == "m4"


# -- chat through a pseudo-terminal ------------------------------------------------------------


class Terminal:
    """A command on a pseudo-terminal: type lines, wait for text."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, close_fds=True
        )
        os.close(slave)
        self.seen = ""

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {text!r} within {timeout}s; the terminal shows:\n{self.seen}"
                )
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the command ended
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the command ended before {text!r}:\n{self.seen}")
                self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        return self.seen

    def close(self) -> int:
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.fixture
def agent_file(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    folder.mkdir()
    path = folder / "helper.md"
    path.write_text(
        textwrap.dedent(
            """\
            ---
            description: A helpful assistant.
            max_turns: 3
            max_tokens: 48
            ---
            You are a helpful assistant. Answer in one short sentence.
            """
        )
    )
    return path


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        if t.process.poll() is None:
            t.process.kill()
            t.process.wait()


def test_chat_keeps_the_conversation_and_ends_on_exit(
    agent_file: Path, tmp_path: Path, terminal: list[Terminal]
) -> None:
    def answer(body: dict[str, Any]) -> str:
        said = [m["content"] for m in body["messages"] if m["role"] == "user"]
        return f"turn {len(said)}: you said {' | '.join(said)}"

    with serve(answer) as (url, received):
        chat = Terminal(
            [LLMFLOW, "chat", str(agent_file), "--base-url", url, "--model", "m"], tmp_path
        )
        terminal.append(chat)
        chat.wait_for("you> ", 60)
        chat.type("hello")
        chat.wait_for("helper> turn 1: you said hello", 30)
        chat.type("and again")
        chat.wait_for("helper> turn 2: you said hello | and again", 30)
        chat.type("/exit")
        assert chat.close() == 0
    assert len(received) == 2
    second = received[1]["messages"]
    assert second[0] == {
        "role": "system",
        "content": "You are a helpful assistant. Answer in one short sentence.",
    }
    assert [m["role"] for m in second[1:]] == ["user", "assistant", "user"]
    assert second[2]["content"] == "turn 1: you said hello"


def test_chat_ends_at_end_of_input(
    agent_file: Path, tmp_path: Path, terminal: list[Terminal]
) -> None:
    with serve(lambda body: "ok") as (url, _received):
        chat = Terminal(
            [LLMFLOW, "chat", str(agent_file), "--base-url", url, "--model", "m"], tmp_path
        )
        terminal.append(chat)
        chat.wait_for("you> ", 60)
        os.write(chat.master, b"\x04")  # Ctrl-D
        assert chat.close() == 0


def test_chat_gives_the_agents_templates_an_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = tmp_path / "support.md"
    agent.write_text("---\nmax_turns: 2\n---\nYou help {{ input.customer }}.\n")
    with serve(lambda body: "hello") as (url, received):
        for given in (["--input", '{"customer": "ann@example.com"}'], []):
            monkeypatch.setattr("sys.stdin", io.StringIO("hi\n/exit\n"))
            args = ["chat", str(agent), "--base-url", url, "--model", "m", *given]
            assert main(args) == 0
    assert "support> hello" in capsys.readouterr().out
    systems = [body["messages"][0]["content"] for body in received]
    # Without --input, a variable the chat has no value for renders empty instead of failing.
    assert systems == ["You help ann@example.com.", "You help ."]


@pytest.mark.embedded
def test_chat_on_the_embedded_model(
    agent_file: Path, tmp_path: Path, terminal: list[Terminal]
) -> None:
    chat = Terminal([LLMFLOW, "chat", str(agent_file)], tmp_path)
    terminal.append(chat)
    chat.wait_for("you> ", 120)
    chat.type("What is the capital of France?")
    seen = chat.wait_for("helper> ", 180)
    chat.wait_for("you> ", 180)
    reply = chat.seen.split("helper> ", 1)[1].split("you> ", 1)[0].strip()
    assert reply  # the tiny model's words vary; that it answered through the loop is the test
    chat.type("/exit")
    assert chat.close() == 0
    assert "error" not in seen.lower()


@pytest.mark.embedded
def test_run_a_workflow_file_on_the_embedded_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "mood"
    root.mkdir()
    (root / "workflow.yaml").write_text(
        textwrap.dedent(
            """\
            name: mood
            input: {type: jsonl}
            steps:
              - id: mood
                kind: llm
                instructions: "Is the customer's message positive or negative?"
                prompt: "Message: {{ input.text }}"
                output: {enum: [positive, negative]}
                max_tokens: 16
              - id: ticket
                kind: gate
                when: "steps.mood == 'negative'"
            result: {mood: steps.mood}
            """
        )
    )
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "I love it, thank you!"}\n{"text": "Broken on arrival. Awful."}\n')
    assert main(["run", str(root), str(inputs), "--json", "--out", str(tmp_path / "out")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [i["ok"] for i in result["items"]] == [True, True]
    assert {i["output"]["mood"] for i in result["items"]} <= {"positive", "negative"}
    assert result["usage"]["calls"] == 2
