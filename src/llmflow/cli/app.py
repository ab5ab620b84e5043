"""The typer application and the shared console helpers."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="llmflow",
    help="Build, run, cost and operate LLM workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console()
"""Results go to stdout."""
err = Console(stderr=True)
"""Progress, warnings and errors go to stderr."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print an error to stderr; return the Exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
