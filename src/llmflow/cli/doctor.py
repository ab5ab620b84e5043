"""`llmflow doctor`: is this install ready to run? Each check says ok, warn or fail, and how
to fix what is not ok."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from .app import EXIT_FAILED, EXIT_OK, out

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    no_model: Annotated[
        bool,
        typer.Option(
            "--no-model", help="Skip loading the embedded model and decoding a few tokens."
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds the embedded model's test decode may take.", min=1),
    ] = 120.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of {name, status, detail, fix}.")
    ] = False,
) -> int:
    """Check the install: Python, llama.cpp (a test decode in a child process, so a crash
    is reported instead of killing llmflow), the state directory, the run store, the durable
    database, the configured provider (key, endpoint, model, price) and Graphviz.

    Exit 0 when no check failed, 1 otherwise.
    """
    from ..doctor import run_checks

    checks = []
    for check in run_checks(model=not no_model, timeout=timeout):
        checks.append(check)
        if not as_json:
            style = _STYLE[check.status]
            out.print(
                f"[{style}]{check.status:<4}[/]  [bold]{escape(check.name)}[/]: "
                f"{escape(check.detail)}",
                highlight=False,
                soft_wrap=True,
            )
            if check.fix and check.status != "ok":
                out.print(f"      fix: {escape(check.fix)}", highlight=False, soft_wrap=True)
    failed = sum(c.status == "fail" for c in checks)
    if as_json:
        out.print_json(json.dumps([c.as_dict() for c in checks]))
    else:
        warned = sum(c.status == "warn" for c in checks)
        plural = "" if warned == 1 else "s"
        out.print(
            f"\n{len(checks) - failed - warned} ok, {warned} warning{plural}, {failed} failed",
            highlight=False,
        )
    return EXIT_FAILED if failed else EXIT_OK
