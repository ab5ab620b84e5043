"""`llmflow runs list|show`: what ran, what each step and model call did."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigError
from ..models.pricing import ZERO, format_cost
from ..store.base import usage_cost
from .app import EXIT_OK, fail, out, print_table, usd

if TYPE_CHECKING:
    from ..store.base import Row
    from ..store.sqlite import RunStore

SHORT_ID = 12
"""Characters of a run id shown in lists; `runs show` takes any unique prefix."""

runs_app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


def _open() -> RunStore:
    from ..settings import Settings  # here, not at import: `llmflow --help` starts fast
    from ..store.sqlite import RunStore

    try:
        return RunStore(Settings().db_path)
    except ConfigError as e:
        raise fail(str(e)) from None


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _duration(row: sqlite3.Row) -> str:
    if not row["ended_at"]:
        return ""
    return f"{row['ended_at'] - row['started_at']:.1f}s"


@dataclass(frozen=True)
class _Usage:
    """What a run's model calls used, from its totals (`Store.usage`)."""

    calls: int = 0
    tokens: int = 0
    cost: Decimal | None = ZERO
    """Dollars, exact; None when a call's price is unknown."""

    @classmethod
    def of(cls, row: Row | None) -> _Usage:
        if row is None:
            return cls()
        return cls(row["calls"], row["input_tokens"] + row["output_tokens"], usage_cost(row))


@runs_app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """List recent runs."""
    store = _open()
    try:
        rows = store.runs(limit)
        totals = store.usage([r["id"] for r in rows])  # kept as rows land: nothing summed
    finally:
        store.close()
    costs = {r["id"]: _Usage.of(totals.get(r["id"])) for r in rows}
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        **dict(r),
                        "calls": costs[r["id"]].calls,
                        "tokens": costs[r["id"]].tokens,
                        "cost_usd": usd(costs[r["id"]].cost),
                    }
                    for r in rows
                ]
            )
        )
        return EXIT_OK
    table = Table(title="runs", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("id", no_wrap=True)
    table.add_column("workflow", overflow="fold", min_width=12)
    table.add_column("status", no_wrap=True)
    table.add_column("items", no_wrap=True)
    table.add_column("calls", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    for r in rows:
        table.add_row(
            r["id"][:SHORT_ID],
            r["workflow"],
            r["status"],
            f"ok {r['items_ok']} · failed {r['items_failed']} of {r['items_total']}",
            f"{costs[r['id']].calls:,}",
            f"{costs[r['id']].tokens:,}",
            format_cost(costs[r["id"]].cost),
            time.strftime("%m-%d %H:%M", time.localtime(r["started_at"])),
        )
    print_table(table)
    return EXIT_OK


PAGE = 50
"""Items `runs show` prints unless --limit says otherwise."""
FAILED_SHOWN = 20
"""Failed items listed above the table (all of them: --status failed)."""


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="A run id, or a unique prefix of one.")],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON, streamed as it is read: one document {run, usage, items_total, "
            "items_by_status, items, steps, model_calls}, one row a line.",
        ),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Items shown, in the order they started, with their steps and calls. "
            f"\\[default: {PAGE}; with --json: every item]",
            show_default=False,
        ),
    ] = None,
    offset: Annotated[int, typer.Option(min=0, help="Items skipped before the first shown.")] = 0,
    status: Annotated[
        str | None, typer.Option(help="Only items of this status (ok, failed, running...).")
    ] = None,
    item: Annotated[
        str | None,
        typer.Option("--item", help="Show this item's step tree: prompts, outputs and tool calls."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="With --item: print long texts whole.")
    ] = False,
) -> int:
    """Show a run: its totals and a page of its items, with their steps and every model call
    (tokens, latency, cost)."""
    store = _open()
    try:
        try:
            run = store.find_run(run_id)
            if item is not None:
                from .logs import item_json, print_item

                if as_json:
                    out.print_json(json.dumps(item_json(store, run, item)))
                else:
                    print_item(store, run, item, full=full)
                return EXIT_OK
        except ConfigError as e:
            raise fail(str(e)) from None
        if as_json:
            from .runs_json import write_run

            write_run(store, run, limit=limit, offset=offset, status=status)
            return EXIT_OK
        _print_run(store, run, limit=limit or PAGE, offset=offset, status=status)
    finally:
        store.close()
    return EXIT_OK


def _print_run(
    store: RunStore, run: sqlite3.Row, *, limit: int, offset: int, status: str | None
) -> None:
    """The run's totals, its failed items, and one page of items with their model calls."""
    counts = store.item_counts(run["id"])
    usage = store.usage([run["id"]]).get(run["id"])  # summed in SQL: a run of any size
    page = store.item_page(run["id"], limit=limit, offset=offset, status=status)
    keys = {i["id"]: i["key"] for i in page}
    calls = [c for i in page for c in store.item_rows("model_calls", i["id"])]
    steps = [s for i in page for s in store.item_rows("steps", i["id"])]
    out.print(
        f"[bold]run {run['id']}[/] · {run['workflow']} · {run['status']} · model {run['model']} · "
        f"{run['items_ok']} ok, {run['items_failed']} failed · {_when(run['started_at'])} "
        f"· {_duration(run)}"
    )
    if run["source"]:
        out.print(f"input: {run['source']}   output: {run['out_dir']}")
    if run["error"]:
        out.print(f"[red]error: {run['error']}[/]")
    failed = counts.get("failed", 0)
    for i in store.item_page(run["id"], limit=FAILED_SHOWN, status="failed"):
        out.print(f"[red]item {i['key']} failed: {i['error']}[/]")
    if failed > FAILED_SHOWN:
        out.print(f"[red]... {failed - FAILED_SHOWN:,} more failed items: --status failed[/]")
    title = f"model calls ({usage['calls'] if usage else 0})"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    models = {c["model"] for c in calls}
    headers = ["item", "step", *(["model"] if len(models) > 1 else []), "in tok", "out tok"]
    for name in [*headers, "ms", "cost", "status"]:
        numeric = name in ("in tok", "out tok", "ms", "cost")
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    prefix = f"{run['workflow']}/"
    for c in calls:
        step = c["step_path"] or ""
        cells = [
            keys.get(c["item_id"], ""),
            step.removeprefix(prefix),
            *([c["model"]] if len(models) > 1 else []),
            str(c["input_tokens"] or 0),
            str(c["output_tokens"] or 0),
            f"{c['latency_ms']:.0f}",
            format_cost(None if c["cost"] is None else Decimal(c["cost"])),
            _call_status(c),
        ]
        table.add_row(*cells)
    print_table(table)
    _print_tool_calls(steps, keys, prefix)
    matching = counts.get(status, 0) if status else sum(counts.values())
    shown = f"{offset + 1:,}-{offset + len(page):,}" if page else "none"
    more = f" · next: --offset {offset + len(page)}" if offset + len(page) < matching else ""
    by_status = ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items()))
    out.print(
        f"items {shown} of {matching:,}{' ' + status if status else ''} shown "
        f"({by_status or 'no items'}){more}"
    )
    if usage is None:
        out.print("0 calls")
        return
    cost = usage_cost(usage)
    out.print(
        f"{usage['calls']} calls ({usage['cached']} cached) · {usage['input_tokens']} input + "
        f"{usage['output_tokens']} output tokens · cost {format_cost(cost)}"
    )


TOOL_KINDS = ("tool", "action", "approval", "check")
"""Steps shown in the tool calls table: tool calls (allowed, refused, rejected), their
approvals (awaiting, approved, rejected) and claims checks."""
SHOWN_CHARS = 300


def _print_tool_calls(steps: Sequence[sqlite3.Row], keys: dict[str, str], prefix: str) -> None:
    """Every tool call with its arguments and result, its approvals and the claims checks."""
    rows = [s for s in steps if s["kind"] in TOOL_KINDS]
    if not rows:
        return
    latest: dict[tuple[str, str], sqlite3.Row] = {}  # an approval: asked, then decided
    for row in rows:
        latest[(row["item_id"] or "", row["path"])] = row
    table = Table(
        title=f"tool calls ({sum(r['kind'] in ('tool', 'action') for r in rows)})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("item", "step", "kind", "status", "arguments", "result"):
        table.add_column(name, overflow="fold")
    for row in latest.values():
        status, result = _tool_status(row)
        table.add_row(
            escape(keys.get(row["item_id"], "")),
            escape((row["path"] or "").removeprefix(prefix)),
            row["kind"],
            status,
            escape(_short(_arguments(row))),
            escape(_short(result)),
        )
    print_table(table)


def _loaded(text: str | None) -> object:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _arguments(row: sqlite3.Row) -> str:
    value = _loaded(row["input"])
    if row["kind"] == "approval" and isinstance(value, dict):
        value = value.get("arguments")
    elif row["kind"] == "check":
        return ""
    if isinstance(value, str):  # a tool call's input is its arguments' JSON text
        value = _loaded(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v!r}" for k, v in value.items())
    return "" if value is None else str(value)


def _tool_status(row: sqlite3.Row) -> tuple[str, str]:
    """The status cell (coloured) and the result text of a tool-calls row."""
    output = _loaded(row["output"])
    if row["kind"] == "approval" and isinstance(output, dict):
        state = str(output.get("status", ""))
        by = f" by {output['by']}" if output.get("by") else ""
        colour = {"approved": "green", "rejected": "red"}.get(state, "yellow")
        return f"[{colour}]{state}{by}[/]", str(output.get("comment") or "")
    if row["kind"] == "check" and isinstance(output, dict):
        if output.get("ok"):
            return "[green]claims match[/]", ", ".join(output.get("claims") or []) or "no claims"
        whys = "; ".join(f"{m['sentence']} ({m['why']})" for m in output.get("mismatches", []))
        return "[red]claims mismatch, reply rewritten[/]", whys
    status = row["status"]
    if status == "ok":
        return "[green]ok[/]", "" if output is None else str(output)
    colour = "yellow" if status in ("refused", "rejected", "blocked") else "red"
    return f"[{colour}]{status}[/]", str(row["error"] or "")


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _call_status(call: sqlite3.Row) -> str:
    if call["status"] != "ok":
        return f"[red]{call['error']}[/]"
    if call["cached"]:
        return "cached"
    return "ok" if call["attempts"] <= 1 else f"ok after {call['attempts']} tries"
