"""Every code snippet of the README and docs/*.md runs as written (docs/cli.md is generated).

Python blocks run in a fresh interpreter; shell blocks line by line through the CLI in this
process. Both run in a sandbox folder that links the repository's `src/`, `data/` and
`examples/` (so the snippets' paths resolve as from the repository root), with their own
`LLMFLOW_HOME`, no network, and the default model `local` answered by a scripted model whose
replies fit any request (`tests/docs_model.py`): no weights, seconds per block.

A shell line is executed and must exit 0 (or its code in `EXIT_CODES`), unless `PARSE_ONLY`
lists it with the reason: then the command and every flag and argument must parse. `make X`
lines are dry-run (`make -n X`). A block preceded by `<!-- skip-test: reason -->` is not
run; `SKIPPED_BLOCKS` counts them so none is skipped unnoticed.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from llmflow import RunStore, Settings
from llmflow.cli import main
from llmflow.cli.app import app
from llmflow.models.gateway import Gateway

from .docs_model import scripted_local

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md"))]
GENERATED = {REPO / "docs" / "cli.md"}  # checked against the code by test_cli_reference
LINKED = ("src", "data", "examples")
SHELL = {"sh", "shell", "bash", "console"}
NOT_CODE = {"", "yaml", "markdown", "text"}
"""Fence languages of blocks that are not commands or programs: not run."""

PARSE_ONLY = {
    # shell line (as shlex.join writes it, comment dropped) -> why it is not executed
    "llmflow run email-triage 'imaps://me%40gmail.com@imap.gmail.com/INBOX?unseen=1'": (
        "needs the reader's mailbox (tests/test_mailboxes.py runs it on a real IMAP server)"
    ),
    "llmflow watch email-triage imaps://me%40gmail.com@imap.gmail.com/INBOX "
    "--max-cost-per-day 1": "needs the reader's mailbox, and watches until stopped",
    "llmflow run email-triage src/llmflow/apps/email_triage/sample_inbox "
    "--model openai:gpt-4.1-mini": "needs OPENAI_API_KEY and the network",
    "llmflow run email-triage my-inbox/ --base-url http://localhost:11434/v1 "
    "--model llama3.2": "needs an Ollama server and the reader's inbox",
    "llmflow run data-analysis my-questions.jsonl": "the reader's own CSV and questions "
    "(the line before it runs the template on its sample)",
    "llmflow approve RUN --comment ok": "needs a run waiting for approval",
    "llmflow run email-triage imaps://me%40gmail.com@imap.gmail.com/INBOX --send-replies "
    "smtp://me%40gmail.com@smtp.gmail.com:587": (
        "needs the reader's mailbox and SMTP server (tests/test_smtp_send.py runs it on real ones)"
    ),
    "llmflow approve RUN/0": "needs a run waiting for approval (tests/test_smtp_send.py)",
    "llmflow run email-triage imaps://me%40gmail.com@imap.gmail.com/INBOX --send-replies "
    "'smtp://me%40gmail.com@smtp.gmail.com:587?max_per_run=5'": (
        "needs the reader's mailbox and SMTP server (tests/test_smtp_send.py runs it on real ones)"
    ),
    "llmflow approve RUN/0 --comment ok": "needs a run waiting for approval",
    "llmflow worker --concurrency 4 --global-concurrency 16 --rate 600 --period 60": (
        "needs PostgreSQL (LLMFLOW_DATABASE_URL) and runs until stopped"
    ),
    "llmflow run email-triage /shared/inbox": "needs PostgreSQL and a shared volume",
    "llmflow run email-triage src/llmflow/apps/email_triage/sample_inbox "
    "--model local:qwen2.5-coder-1.5b": "needs pip install 'llmflow[qwen]' (1.1 GB); make "
    "test-extras runs it on three mails",
    "llmflow ui": "serves until stopped (tests/test_ui.py and tests/test_ui_browser.py start it)",
    "llmflow runs show RUN --item 001-invoice-overdue.eml": (
        "an item of a sample-inbox run (the test's recorded run is the tasks template)"
    ),
}
EXIT_CODES: dict[str, int] = {
    # shell line -> the exit code the documentation says it ends with
}
SKIPPED_BLOCKS = 1
"""Blocks marked `<!-- skip-test: reason -->`; raise it only with such a mark."""
PLACEHOLDERS = ("<run id>", "<run>")
"""Stand for a recorded run: executed lines get the id of a run the test makes first (and
`RUN` in the keys of `PARSE_ONLY` and `EXIT_CODES`)."""
STDIN = "Where is my order?\n/exit\n"
"""What `llmflow chat` reads: one turn, then the command that ends it."""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


FENCE = re.compile(r"^(\s*)(`{3,})(\S*)\s*$")
SKIP_MARK = re.compile(r"<!--\s*skip-test:\s*(.+?)\s*-->")


def read_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the line of their opening fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, ticks, lang = opening.groups()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != ticks:
            body.append(lines[index].removeprefix(indent))
            index += 1
        before = next((text for text in reversed(lines[:start]) if text.strip()), "")
        mark = SKIP_MARK.search(before)
        code = "\n".join(body) + "\n"
        blocks.append(Block(path, start + 1, lang.lower(), code, mark and mark.group(1)))
        index += 1
    return blocks


ALL_BLOCKS = [b for doc in DOCUMENTS if doc not in GENERATED for b in read_blocks(doc)]
PYTHON_BLOCKS = [b for b in ALL_BLOCKS if b.lang == "python"]
SHELL_BLOCKS = [b for b in ALL_BLOCKS if b.lang in SHELL]


def commands(code: str) -> list[str]:
    """The block's command lines: continuations joined, blank and comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    lines = (line.strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def normal(tokens: list[str]) -> str:
    return shlex.join(tokens)


def line_tokens(line: str, run_id: str = "RUN") -> tuple[dict[str, str], list[str]]:
    """A command line's leading `VAR=value` settings and its words, comment dropped."""
    for placeholder in PLACEHOLDERS:
        line = line.replace(placeholder, run_id)
    tokens = shlex.split(line, comments=True)
    env: dict[str, str] = {}
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env[name] = value
    return env, tokens


# -- the sandbox ----------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder snippets run in (conftest made it the cwd, LLMFLOW_HOME inside it)."""
    for name in LINKED:
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    monkeypatch.setattr(Gateway, "_make_local", scripted_local)
    return tmp_path


SITECUSTOMIZE = f"""\
import sys

sys.path.append({str(REPO)!r})
from tests.docs_model import install  # noqa: E402

install()
"""


# -- Python blocks ----------------------------------------------------------------------------


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_snippet_runs_as_written(block: Block, sandbox: Path, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(block.skip)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    script = sandbox / "snippet.py"
    script.write_text(block.code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(site), "DOCS_MODEL_MARK": str(tmp_path / "mark")}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=sandbox,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "mark").is_file(), "the scripted model was not installed"


# -- shell blocks -----------------------------------------------------------------------------


def check_parses(words: list[str]) -> None:
    """`llmflow <words>` names a command, and its options and arguments parse (not run)."""
    # Typer ships its own copy of click: commands are told apart by their attributes.
    command: Any = typer.main.get_command(app)
    name = "llmflow"
    rest = list(words)
    while hasattr(command, "commands"):
        assert rest, f"llmflow {' '.join(words)}: a subcommand is missing"
        name, *rest = rest
        assert name in command.commands, f"llmflow has no command {name!r}"
        command = command.commands[name]
    try:
        command.make_context(name, rest)
    except typer.TyperException as e:
        pytest.fail(f"llmflow {' '.join(words)}: {getattr(e, 'format_message', e.__str__)()}")


def seed_run() -> str:
    """A recorded durable run (the tasks template on its sample) for `<run id>`."""
    assert main(["run", "tasks", "src/llmflow/templates/tasks/sample"]) == 0
    store = RunStore(Settings().db_path)
    try:
        return str(store.runs(1)[0]["id"])
    finally:
        store.close()


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_shell_snippet_runs_as_written(
    block: Block, sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if block.skip:
        pytest.skip(block.skip)
    lines = commands(block.code)
    run_id = None
    if any(p in line for line in lines for p in PLACEHOLDERS):
        run_id = seed_run()
    exported: dict[str, str] = {}
    for line in lines:
        env, words = line_tokens(line)
        key = normal(["llmflow", *words[1:]])
        if words[0] == "export":  # for the block's later lines
            exported.update(word.partition("=")[::2] for word in words[1:])
            continue
        if words[0] == "make":
            dry = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True)
            assert dry.returncode == 0, f"{block.id}: {line}: {dry.stderr.decode()}"
            continue
        assert words[0] in ("llmflow", ".venv/bin/llmflow"), f"{block.id}: unknown: {line}"
        if key in PARSE_ONLY:
            check_parses(words[1:])
            continue
        if run_id:
            env, words = line_tokens(line, run_id)
        with monkeypatch.context() as patch:
            for name, value in {**exported, **env}.items():
                patch.setenv(name, value)
            patch.setattr(sys, "stdin", io.StringIO(STDIN))
            code = main(words[1:])
        expected = EXIT_CODES.get(key, 0)
        assert code == expected, f"{block.id}: `{line}` exited {code}, not {expected}"


def test_every_block_is_run_or_skipped_with_a_reason() -> None:
    shell_lines = {
        normal(["llmflow", *line_tokens(line)[1][1:]])
        for block in SHELL_BLOCKS
        for line in commands(block.code)
    }
    assert not set(PARSE_ONLY) - shell_lines, "PARSE_ONLY names lines no document has"
    assert not set(EXIT_CODES) - shell_lines, "EXIT_CODES names lines no document has"
    assert sum(bool(b.skip) for b in ALL_BLOCKS) == SKIPPED_BLOCKS
    assert PYTHON_BLOCKS and SHELL_BLOCKS
    # Other blocks are data, layouts or output; a new language must be placed on either side.
    others = {b.id: b.lang for b in ALL_BLOCKS if b.lang not in SHELL | {"python"}}
    assert set(others.values()) <= NOT_CODE, others
