"""Commands that read the durable database work on one that is absent, new, half-created, or
being created by another process at that very moment: an empty answer, never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llmflow.cli import main

LAUNCH = "from llmflow.durable import engine; engine.launch(); engine.shutdown()"


def _approvals(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["approvals", "list"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_approvals_on_an_absent_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMFLOW_HOME", str(tmp_path / "nowhere"))
    assert _approvals(capsys) == (0, "no approvals waiting\n")


@pytest.mark.parametrize(
    "tables",
    [
        pytest.param([], id="new: the file exists, no tables yet"),
        pytest.param(["CREATE TABLE dbos_migrations (version BIGINT)"], id="half-created"),
    ],
)
def test_approvals_on_a_database_not_made_yet(
    tables: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LLMFLOW_HOME", str(tmp_path))
    with sqlite3.connect(tmp_path / "durable.sqlite") as db:
        db.execute("PRAGMA journal_mode=WAL")
        for sql in tables:
            db.execute(sql)
    assert _approvals(capsys) == (0, "no approvals waiting\n")
    assert main(["approve", "0123"]) == 2  # waits for nothing: a usage error, no traceback
    assert "Traceback" not in capsys.readouterr().err


def test_approvals_while_another_process_creates_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The race on purpose: `approvals list` again and again while a first run's process
    creates the durable database's tables."""
    reads = 0
    for attempt in range(3):
        home = tmp_path / f"home{attempt}"
        monkeypatch.setenv("LLMFLOW_HOME", str(home))
        env = {**os.environ, "LLMFLOW_HOME": str(home)}
        creator = subprocess.Popen([sys.executable, "-c", LAUNCH], env=env)
        try:
            while creator.poll() is None:
                code, output = _approvals(capsys)
                assert code == 0, output
                assert output == "no approvals waiting\n"
                reads += 1
        finally:
            creator.kill()
            creator.wait()
        assert creator.returncode == 0
        assert _approvals(capsys) == (0, "no approvals waiting\n")
    assert reads > 0
