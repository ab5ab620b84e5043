"""docs/cli.md is generated from the commands: it must match what the code generates now."""

from __future__ import annotations

from pathlib import Path

from llmflow.cli.reference import reference

DOC = Path(__file__).parent.parent / "docs" / "cli.md"


def test_the_committed_cli_reference_matches_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), (
        "docs/cli.md is stale: regenerate it with "
        "`.venv/bin/python -m llmflow.cli.reference > docs/cli.md`"
    )


def test_every_command_is_documented() -> None:
    text = reference()
    for command in ("run", "runs list", "calibrate", "distill", "eval", "validate", "templates"):
        assert f"## `llmflow {command}`" in text
