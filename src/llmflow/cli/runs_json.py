"""`llmflow runs show --json`: a run as one JSON document, streamed.

The document has the shape it always had, `{"run", "usage", "items", "steps", "model_calls"}`
(now with `items_total` and `items_by_status`), so `json.load` reads it whole; but it is
written as it is read from the store, one row a line (`json.dumps` per row), never built as
one list: a run of 5,000 or 100,000 items prints at once and in constant memory. With
--limit/--offset/--status, `items` is that page of items, and `steps` and `model_calls` are
theirs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..analysis.costs import summarise
from .app import out, usage_json

if TYPE_CHECKING:
    from ..store.base import Row
    from ..store.sqlite import RunStore


def write_run(
    store: RunStore, run: Row, *, limit: int | None, offset: int, status: str | None
) -> None:
    """Write run `run` to stdout (see the module's docstring)."""
    run_id = run["id"]
    counts = store.item_counts(run_id)
    head = {
        "run": dict(run),
        "usage": usage_json(summarise(store.call_costs(run_id))),
        "items_total": sum(counts.values()),
        "items_by_status": counts,
    }
    lists: dict[str, Iterable[Any]]
    if limit is None and not offset and status is None:
        lists = {
            "items": store.stream("items", run_id),
            "steps": store.stream("steps", run_id),
            "model_calls": (_call_json(c) for c in store.stream("model_calls", run_id)),
        }
    else:
        page = store.item_page(run_id, limit=limit or -1, offset=offset, status=status)
        lists = {
            "items": page,
            "steps": (s for i in page for s in store.item_rows("steps", i["id"])),
            "model_calls": (
                _call_json(c) for i in page for c in store.item_rows("model_calls", i["id"])
            ),
        }
    write = out.file.write
    write("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()))
    for name, rows in lists.items():
        write(f", {json.dumps(name)}: [")
        for chunk in _chunks(json.dumps(dict(r)) for r in rows):
            write(chunk)
        write("\n]")
    write("}\n")


def _chunks(lines: Iterator[str], size: int = 200) -> Iterator[str]:
    """Rows joined as a JSON array's elements, `size` a write (each write is redacted)."""
    batch: list[str] = []
    first = True
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield ("\n" if first else ",\n") + ",\n".join(batch)
            batch, first = [], False
    if batch:
        yield ("\n" if first else ",\n") + ",\n".join(batch)


def _call_json(call: Row) -> dict[str, object]:
    """A recorded model call, its money under `cost_usd` like every `--json` output."""
    row = dict(call)
    row["cost_usd"] = row.pop("cost", None)
    return row
