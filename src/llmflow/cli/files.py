"""Workflow-file commands: `validate`, `templates`, `new`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..errors import ConfigError, SpecError
from .app import EXIT_OK, EXIT_USAGE, err, fail, out

if TYPE_CHECKING:  # the commands import what they use: `llmflow --help` starts fast
    pass


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("templates")(list_templates)
    app.command("new")(new)


def validate(
    file: Annotated[
        Path,
        typer.Argument(help="A workflow file, a folder holding workflow.yaml, or an agent file."),
    ],
) -> int:
    """Check a workflow file (or agent file): every mistake as file:line:column."""
    from ..models.gateway import Gateway
    from ..settings import Settings
    from ..workflow_files import load_agent_file, validate_file

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
    from ..workflow_files import templates

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
    from ..workflow_files import TEMPLATES, templates
    from ..workflow_files.source import did_you_mean

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
