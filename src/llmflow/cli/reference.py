"""The CLI reference (docs/cli.md), generated from the commands themselves.

`python -m llmflow.cli.reference > docs/cli.md` rewrites it; a test fails when the committed
file differs from what the code generates, so the reference cannot drift from the CLI.
"""

from __future__ import annotations

from typing import Any

import typer

from .app import app

# Typer ships its own copy of click, so commands and parameters are read by their attributes.
Command = Any
Param = Any


def reference() -> str:
    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from the code by `python -m llmflow.cli.reference > docs/cli.md`; a test",
        "checks that this file matches. Exit codes: 0 success; 1 the run failed; 2 a usage or",
        "configuration error; 3 finished, some items failed; 130 interrupted.",
        "",
    ]
    lines += _commands(root, "llmflow")
    return "\n".join(lines).rstrip() + "\n"


def _commands(command: Command, path: str) -> list[str]:
    if not hasattr(command, "commands"):
        return _command(command, path)
    lines: list[str] = []
    if path != "llmflow":
        lines += [f"## `{path}`", "", _first_paragraph(command.help), ""]
    for name in command.list_commands(None):  # the order of `llmflow --help`
        sub = command.commands[name]
        if not sub.hidden:
            lines += _commands(sub, f"{path} {name}")
    return lines


def _command(command: Command, path: str) -> list[str]:
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    usage = " ".join([path, *(a.name.upper() for a in arguments), "[OPTIONS]"])
    lines = [f"## `{path}`", "", _first_paragraph(command.help), "", f"    {usage}", ""]
    for argument in arguments:
        lines.append(f"- `{argument.name.upper()}`: {_help(argument)}")
    for option in options:
        if option.name == "help":
            continue
        flags = ", ".join(f"`{flag}`" for flag in [*option.opts, *option.secondary_opts])
        default = _default(option)
        lines.append(f"- {flags}: {_help(option)}{default}")
    return [*lines, ""]


def _help(param: Param) -> str:
    text = (getattr(param, "help", None) or "").replace("\\[", "[")  # rich markup escapes
    return " ".join(text.split()) or "—"


def _default(option: Param) -> str:
    if option.is_flag or option.default is None or option.required:
        return ""
    value = option.default
    if isinstance(value, (list, tuple)):
        return "" if not value else f" (default: {', '.join(map(str, value))})"
    return f" (default: `{value}`)"


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


if __name__ == "__main__":  # pragma: no cover - the generator's entry point
    print(reference(), end="")
