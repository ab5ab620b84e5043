"""`llmflow graph`: draw a workflow's structure (Mermaid, Graphviz DOT, SVG or PNG)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, LLMFlowError
from .app import EXIT_FAILED, EXIT_OK, err, fail


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"
    png = "png"


SUFFIXES: dict[str, GraphFormat] = {
    ".mmd": GraphFormat.mermaid,
    ".mermaid": GraphFormat.mermaid,
    ".dot": GraphFormat.dot,
    ".gv": GraphFormat.dot,
    ".svg": GraphFormat.svg,
    ".png": GraphFormat.png,
}


def register(app: typer.Typer) -> None:
    app.command("graph")(graph)


def graph(
    workflow: Annotated[
        str, typer.Argument(help="A registered workflow (email-triage) or module:attr.")
    ],
    fmt: Annotated[
        GraphFormat | None,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            show_default=False,
            help="mermaid or dot (text), svg or png (drawn by Graphviz's dot). "
            "\\[default: from --out's suffix, else mermaid]",
        ),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write to this file (.mmd, .dot/.gv, .svg, .png). \\[default: stdout]",
            show_default=False,
        ),
    ] = None,
) -> int:
    """Draw a workflow's steps and how control flows between them."""
    if fmt is None:
        if out_file is None:
            fmt = GraphFormat.mermaid
        elif out_file.suffix.lower() in SUFFIXES:
            fmt = SUFFIXES[out_file.suffix.lower()]
        else:
            known = ", ".join(SUFFIXES)
            raise fail(
                f"cannot tell the format of {out_file} from its suffix ({known}): "
                "give --format mermaid|dot|svg|png"
            )
    if fmt is GraphFormat.png and out_file is None and sys.stdout.isatty():
        raise fail("a PNG is binary: write it to a file with --out graph.png")
    from ..graph import render  # here, not at import: `llmflow --help` starts fast
    from ..workflows import load_workflow

    try:
        drawing = render(load_workflow(workflow), fmt.value)
    except ConfigError as e:
        raise fail(str(e)) from None
    except LLMFlowError as e:
        raise fail(str(e), EXIT_FAILED) from None
    data = drawing.encode() if isinstance(drawing, str) else drawing
    if out_file is not None:
        try:
            out_file.parent.mkdir(parents=True, exist_ok=True)
            out_file.write_bytes(data)
        except OSError as e:
            raise fail(f"cannot write {out_file}: {e.strerror or e}") from None
        err.print(f"wrote {out_file}", highlight=False, soft_wrap=True)
    elif isinstance(drawing, str):
        typer.echo(drawing, nl=False)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return EXIT_OK
