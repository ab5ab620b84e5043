"""The typer application and the shared console helpers."""

from __future__ import annotations

import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo

if TYPE_CHECKING:  # `llmflow --help` must start fast: the runtime loads where it is used
    from ..analysis.costs import CostSummary
    from ..runtime.runner import ItemResult

PANELS: dict[str, tuple[str, ...]] = {
    "Run": ("run", "resume", "watch"),
    "Inspect and forecast": ("runs", "ui", "cost", "estimate"),
    "Workflow files": ("validate", "graph", "templates", "new", "chat"),
    "Classifiers": ("eval", "calibrate", "distill", "correct"),
    "Approvals and workers": ("approvals", "approve", "reject", "worker"),
    "Setup": ("doctor", "models"),
}
"""`llmflow --help`'s panels, and its commands in this order (the reference's too)."""
ORDER = {name: i for i, name in enumerate(n for names in PANELS.values() for n in names)}


class _Ordered(TyperGroup):
    """Commands listed in `PANELS` order (typer lists commands, then groups, as registered)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(super().list_commands(ctx), key=lambda name: ORDER.get(name, len(ORDER)))


app = typer.Typer(
    name="llmflow",
    cls=_Ordered,
    help="Build, run, cost and operate LLM workflows.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def arrange(app: typer.Typer) -> None:
    """Put each registered command and group in its `PANELS` panel of `--help`."""
    panel_of = {name: panel for panel, names in PANELS.items() for name in names}
    infos: list[CommandInfo | TyperInfo] = [*app.registered_commands, *app.registered_groups]
    for info in infos:
        if isinstance(info.name, str) and info.name in panel_of:
            info.rich_help_panel = panel_of[info.name]


def _flags_without_types() -> None:
    """typer >= 0.2x shows a flag's type (`--json <bool>`, `--help <bool>`) though a flag
    takes no value: show none."""
    option: Any = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if shown is None or getattr(shown, "flags_hidden", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.flags_hidden = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich


_flags_without_types()


class _Redacted:
    """`sys.stdout` or `sys.stderr` (whichever it is at the time of writing, so that tests and
    redirections see the output) with every credential removed (`llmflow.redact`)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def write(self, text: str) -> int:
        from ..redact import redact

        stream = getattr(sys, self._name)
        stream.write(redact(text))
        return len(text)

    def __getattr__(self, attr: str) -> Any:  # isatty, fileno, flush, encoding...
        return getattr(getattr(sys, self._name), attr)


out = Console(file=_Redacted("stdout"))  # type: ignore[arg-type]
"""Results go to stdout."""
err = Console(file=_Redacted("stderr"))  # type: ignore[arg-type]
"""Progress, warnings and errors go to stderr."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print an error to stderr; return the Exit to raise."""
    # Escaped: messages quote user input and commands such as pip install 'llmflow[qwen]'.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_table(table: RenderableType) -> None:
    """A table on stdout; in a pipe or a file every row stays on one line, however wide,
    instead of being folded to 80 columns."""
    if out.is_terminal:
        out.print(table)
        return
    width = out.measure(table, options=out.options.update_width(100_000)).maximum
    Console(file=out.file, width=max(width, 20)).print(table)


# -- money in --json output -----------------------------------------------------------------
# Every amount of money is a string decimal of US dollars (exact, as recorded) under a key
# named `cost_usd` (or `cost_usd_<qualifier>`), and null where a price is unknown.


def usd(value: Decimal | None) -> str | None:
    """Dollars as `--json` gives them: an exact decimal string, or None when unknown."""
    return None if value is None else str(value)


def usage_json(summary: CostSummary) -> dict[str, Any]:
    """What a set of model calls cost, as every `--json` output gives it."""
    return {
        "cost_usd": usd(summary.cost),
        "unknown_price": sorted(summary.unknown),
        "calls": summary.calls,
        "cached": summary.cached,
        "cache_hit_rate": round(summary.hit_rate, 4),
        "input_tokens": summary.input_tokens,
        "output_tokens": summary.output_tokens,
    }


# -- checks of option values, before any work -----------------------------------------------


def dollars(value: Decimal | None) -> Decimal | None:
    """A budget in dollars (`--max-cost`, `--max-cost-per-item`): 0 or more."""
    if value is not None and (not value.is_finite() or value < 0):
        raise typer.BadParameter(f"{value} is not a budget: give dollars, 0 or more (e.g. 0.50)")
    return value


def endpoint(value: str | None) -> str | None:
    """`--base-url`: an http(s) URL."""
    from ..settings import base_url_problem

    problem = None if value is None else base_url_problem(value)
    if problem:
        raise typer.BadParameter(problem)
    return value


def writable_folder(folder: Path, fix: str) -> None:
    """Refuse (exit 2) a folder that cannot be created or written, before any model call:
    otherwise a run would fail writing its results after paying for every call."""
    doing = "create"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        doing = "write to"
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise fail(f"cannot {doing} the folder {folder} ({e.strerror or e}): {fix}") from None


class BatchProgress:
    """A batch's progress bar on stderr: items done of the total, and how many failed."""

    def __init__(self, description: str, total: int, *, quiet: bool = False) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

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
