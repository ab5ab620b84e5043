"""Printing a finished run: its items, its cost line and where its files are, or JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from ..analysis.costs import CostSummary
from ..models.pricing import format_cost
from ..untrusted import one_line
from .app import out, usage_json, usd

if TYPE_CHECKING:  # the work loads when a command runs, so that `llmflow --help` starts fast
    from ..models.pricing import Pricing
    from ..runtime.runner import BatchResult, Workflow


def cost_line(summary: CostSummary, compare: str, compared: Decimal | None) -> str:
    """cost $0.0000 · 1,234 tokens (1,000 in, 234 out) · 12 calls, 3 cached (25%) · on ..."""
    unknown = f" (price unknown: {', '.join(sorted(summary.unknown))})" if summary.unknown else ""
    line = (
        f"cost {format_cost(summary.cost)}{unknown} · {summary.tokens:,} tokens "
        f"({summary.input_tokens:,} in, {summary.output_tokens:,} out) · {summary.calls} calls, "
        f"{summary.cached} cached ({summary.hit_rate:.0%})"
    )
    if compared is not None:
        line += f" · on {compare} ≈ {format_cost(compared)}"
    return line


def _cell(value: str, limit: int = 160) -> str:
    """One table cell: a single line, cut at `limit` characters (the full text is in --json).
    An item's text is from its input (a mail's subject and body): shown as it is, never read
    as Rich markup ([link=...], [on red]) or run by the terminal (ESC sequences)."""
    return escape(one_line(value, limit))


def report(
    batch: BatchResult,
    wf: Workflow,
    as_json: bool,
    summary: CostSummary,
    pricing: Pricing,
    compare: str,
) -> None:
    """Print a finished run: its items, its cost line and where its files are (or JSON)."""
    from ..store.sqlite import to_json

    compared = summary.on(pricing, compare)
    if as_json:
        payload = {
            "usage": {
                **usage_json(summary),
                "compare": {"model": compare, "cost_usd": usd(compared)},
            },
            "run_id": batch.run_id,
            "workflow": batch.workflow,
            "status": batch.status,
            "out_dir": str(batch.out_dir) if batch.out_dir else None,
            "artifacts": {k: str(v) for k, v in batch.artifacts.items()},
            "items": [
                {
                    "key": r.key,
                    "ok": r.ok,
                    "output": json.loads(to_json(r.output) or "null"),
                    "error": str(r.error) if r.error else None,
                }
                for r in batch.results
            ],
        }
        out.print_json(json.dumps(payload))
        return
    table = Table(title=f"{batch.workflow} · run {batch.run_id}", title_justify="left")
    table.add_column("item", no_wrap=True, overflow="ellipsis", max_width=26)
    columns = wf.columns or (lambda o: {"output": str(o)})
    first_ok = next((r for r in batch.results if r.ok), None)
    names = list(columns(first_ok.output)) if first_ok else ["result"]
    for name in names:
        table.add_column(name, overflow="fold", ratio=3 if name == names[-1] else None)
    for r in batch.results:
        if r.ok:
            cells = [_cell(v) for v in columns(r.output).values()]
        else:  # the reason goes in the widest column
            cells = [""] * (len(names) - 1) + [f"[red]failed: {_cell(str(r.error), 2000)}[/]"]
        table.add_row(_cell(r.key) if r.ok else f"[red]{_cell(r.key)}[/]", *cells)
    out.print(table)
    ok = sum(r.ok for r in batch.results)
    out.print(f"{ok} ok, {len(batch.results) - ok} failed · status [bold]{batch.status}[/]")
    out.print(cost_line(summary, compare, compared), highlight=False)
    for name, path in batch.artifacts.items():
        out.print(f"{name}: {path}")
    out.print(f"details: llmflow runs show {batch.run_id}")
