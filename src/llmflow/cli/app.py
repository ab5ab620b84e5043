"""The typer application and the shared console helpers."""

from __future__ import annotations

from types import TracebackType

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..runtime.runner import ItemResult

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


class BatchProgress:
    """A batch's progress bar on stderr: items done of the total, and how many failed."""

    def __init__(self, description: str, total: int, *, quiet: bool = False) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[failed]}"),
            console=err,
            disable=quiet,
        )
        self.task = self.bar.add_task(description, total=total, failed="")
        self.failed = 0

    def done(self, result: ItemResult) -> None:
        """Count an item that ended (the runner's `on_item_done`)."""
        self.failed += not result.ok
        failed = f"[red]{self.failed} failed" if self.failed else ""
        self.bar.update(self.task, advance=1, failed=failed)

    def __enter__(self) -> BatchProgress:
        self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.bar.stop()
