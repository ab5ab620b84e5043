"""Workflow-file commands: `validate`, `templates`, `new`, `chat`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..errors import ConfigError, LLMFlowError, SpecError
from .app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, endpoint, err, fail, out

if TYPE_CHECKING:  # the commands import what they use: `llmflow --help` starts fast
    from ..models.gateway import Gateway

EXIT_COMMANDS = ("/exit", "/quit")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("templates")(list_templates)
    app.command("new")(new)
    app.command("chat")(chat)


def validate(
    file: Annotated[
        Path,
        typer.Argument(help="A workflow file, a folder holding workflow.yaml, or an agent file."),
    ],
) -> int:
    """Check a workflow file (or agent file): every mistake as file:line:column."""
    from ..models.gateway import Gateway
    from ..settings import Settings
    from ..spec import load_agent_file, validate_file

    try:
        if file.suffix.lower() == ".md":
            agent = load_agent_file(file)
            tools = len(agent.tools)
            out.print(
                f"ok: {file}: agent {agent.name!r}, {tools} tool{'' if tools == 1 else 's'}",
                highlight=False,
                soft_wrap=True,
            )
            return EXIT_OK
        workflow = validate_file(file, Gateway(Settings()))
    except SpecError as e:
        for source, line, column, message in e.problems:
            err.print(
                f"{source}:{line}:{column}: [bold red]error:[/] {message}",
                highlight=False,
                soft_wrap=True,
            )
        count = len(e.problems)
        err.print(f"{count} problem{'s' if count > 1 else ''} found", highlight=False)
        return EXIT_USAGE
    except ConfigError as e:
        raise fail(str(e)) from None
    steps = len(workflow.step.children())
    out.print(
        f"ok: {workflow.file}: workflow {workflow.name!r}, {steps} steps",
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


def list_templates() -> int:
    """List the workflow templates shipped with llmflow."""
    from ..spec import templates

    found = templates()
    table = Table("template", "description", title="llmflow new <template> <dir>")
    for name, description in found.items():
        table.add_row(name, description)
    out.print(table)
    return EXIT_OK


def new(
    template: Annotated[str, typer.Argument(help="A template name (see llmflow templates).")],
    target: Annotated[Path, typer.Argument(help="A new (or empty) folder to copy it to.")],
) -> int:
    """Copy a template to a folder, to edit and run."""
    from ..spec import TEMPLATES, templates
    from ..spec.source import did_you_mean

    found = templates()
    if template not in found:
        hint = did_you_mean(template, found)
        raise fail(f"no template {template!r}{hint}: one of {', '.join(found) or 'none'}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise fail(f"{target} exists and is not an empty folder: choose a new folder")
    shutil.copytree(
        TEMPLATES / template,
        target,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    out.print(f"created {target} from template {template!r}", highlight=False)
    out.print(f"next: edit {target / 'workflow.yaml'}, then llmflow run {target} <input>")
    return EXIT_OK


def chat(
    agent_file: Annotated[Path, typer.Argument(help="An agent file (Markdown, front matter).")],
    model: Annotated[
        str | None,
        typer.Option(help="Model: local, openai:<model>, or a model at --base-url."),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            callback=endpoint,
            help="An OpenAI-compatible endpoint, e.g. http://localhost:8000/v1. "
            "\\[env: OPENAI_BASE_URL]",
        ),
    ] = None,
    input_value: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="What the agent's instructions see as `input`: JSON, or text. "
            "\\[default: each line you type]",
        ),
    ] = None,
) -> int:
    """Talk with an agent: each line is a turn; /exit or Ctrl-D ends."""
    import asyncio

    from ..models.gateway import Gateway
    from ..settings import Settings
    from ..spec import load_agent_file

    try:
        agent = load_agent_file(agent_file)
        overrides: dict[str, Any] = {}
        if model:
            overrides["model"] = model
        if base_url:
            overrides["base_url"] = base_url
        gateway = Gateway(Settings().model_copy(update=overrides))
        if model:  # the command line wins over the agent file's model
            agent.model = model
        gateway.resolve(agent.model)  # an unknown model or a missing key fails now
    except SpecError as e:
        raise fail(str(e)) from None
    except ConfigError as e:
        raise fail(str(e)) from None
    err.print(f"chatting with {agent.name} ({agent.description}); /exit or Ctrl-D to end")
    try:
        return asyncio.run(_converse(agent, gateway, _parse_input(input_value)))
    except KeyboardInterrupt:  # Ctrl-C ends the chat like /exit, without a traceback
        err.print()
        return EXIT_INTERRUPTED


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


async def _converse(agent: Any, gateway: Gateway, input: Any) -> int:
    import asyncio

    from ..runtime.context import RunContext
    from ..spec.scope import Conversation
    from ..store.sqlite import to_json

    conversation = Conversation(input)
    ctx = RunContext(gateway=gateway)
    try:
        while True:
            line = await asyncio.to_thread(_read_line)
            if line is None or line.strip() in EXIT_COMMANDS:
                return EXIT_OK
            if not line.strip():
                continue
            conversation.turns.append(("user", line.strip()))
            try:
                answer = await agent(conversation, ctx)
            except LLMFlowError as e:
                err.print(f"[bold red]error:[/] {e}", highlight=False)
                conversation.turns.pop()
                if isinstance(e, ConfigError):
                    return EXIT_FAILED
                continue
            text = answer if isinstance(answer, str) else (to_json(answer) or "")
            conversation.turns.append(("assistant", text))
            out.print(f"{agent.name}> {text}", highlight=False, markup=False)
    finally:
        await gateway.aclose()


def _read_line() -> str | None:
    """One line from the user (None at end of input); the prompt goes to stderr."""
    sys.stderr.write("you> ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    return line if line else None
