"""`llmflow cost`: what runs cost, grouped by workflow, step, model, run or day."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from ..analysis.costs import group, summarise
from ..errors import ConfigError
from ..models.pricing import format_cost
from .app import EXIT_OK, fail, out, print_table, usage_json


class By(StrEnum):
    workflow = "workflow"
    step = "step"
    model = "model"
    run = "run"
    day = "day"


def register(app: typer.Typer) -> None:
    app.command("cost")(cost)


def cost(
    by: Annotated[
        By, typer.Option(help="Group by workflow, step, model, run or day.")
    ] = By.workflow,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only this run (an id or a unique prefix).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Show what the recorded runs cost: money, tokens, calls and cache hits."""
    from ..settings import Settings  # here, not at import: `llmflow --help` starts fast
    from ..store.sqlite import RunStore

    try:
        store = RunStore(Settings().db_path)
        try:
            rows = store.call_costs(store.find_run(run_id)["id"] if run_id else None)
        finally:
            store.close()
    except ConfigError as e:
        raise fail(str(e)) from None
    groups = group(rows, by.value)
    total = summarise(rows)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "by": by.value,
                    "groups": {key: usage_json(s) for key, s in groups.items()},
                    "total": usage_json(total),
                }
            )
        )
        return EXIT_OK
    table = Table(title=f"cost by {by.value}", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column(by.value, overflow="fold")
    for name in ("cost", "calls", "cached", "in tok", "out tok"):
        table.add_column(name, justify="right", no_wrap=True)
    for key, s in sorted(groups.items()):
        table.add_row(
            key, format_cost(s.cost), str(s.calls), f"{s.hit_rate:.0%}",
            f"{s.input_tokens:,}", f"{s.output_tokens:,}",
        )  # fmt: skip
    table.add_row(
        "[bold]total[/]", f"[bold]{format_cost(total.cost)}[/]", str(total.calls),
        f"{total.hit_rate:.0%}", f"{total.input_tokens:,}", f"{total.output_tokens:,}",
    )  # fmt: skip
    print_table(table)
    if total.unknown:
        out.print(f"price unknown for: {', '.join(sorted(total.unknown))}")
    return EXIT_OK
