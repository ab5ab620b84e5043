"""The viewer's read-only pages: runs, a run, an item's timeline, a model call, costs.

Each reads a page of rows, or a run's totals (`store.sqlite_reads`): none sums a run's rows,
so they answer as fast on a run of 100,000 items as on one of 10.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..errors import ConfigError
from ..store.base import Row
from . import format as fmt
from .approvals import waiting
from .viewer import PAGE, Site, page_number


class Pages:
    """The page handlers (Starlette endpoints) over one `Site`."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.viewer = site.viewer

    async def runs(self, request: Request) -> Response:
        q = request.query_params
        n = page_number(q.get("page"))
        filters = {k: q.get(k) or None for k in ("workflow", "status", "since", "until")}
        store = self.viewer.store()
        rows = store.run_page(
            limit=PAGE + 1,
            offset=(n - 1) * PAGE,
            workflow=filters["workflow"],
            status=filters["status"],
            since=_day(filters["since"]),
            until=_day(filters["until"], end=True),
        )
        more, rows = len(rows) > PAGE, list(rows[:PAGE])
        usage = store.usage([r["id"] for r in rows])
        return self.site.page(
            request, "runs.html", runs=rows, usage=usage, filters=filters, page=n, more=more,
            workflows=store.workflows(), running=any(r["status"] == "running" for r in rows),
            query=_query(filters),
        )  # fmt: skip

    async def run(self, request: Request) -> Response:
        store = self.viewer.store()
        try:
            found = store.find_run(request.path_params["run_id"])
        except ConfigError as e:
            return self.site.not_found(request, str(e))
        q = request.query_params
        n, status = page_number(q.get("page")), q.get("status") or None
        items = store.item_page(found["id"], limit=PAGE + 1, offset=(n - 1) * PAGE, status=status)
        more, items = len(items) > PAGE, list(items[:PAGE])
        usage = store.usage([found["id"]]).get(found["id"])
        prefix = f"{found['workflow']}/"
        steps = [_relative(dict(s), prefix) for s in store.step_usage(found["id"])]
        return self.site.page(
            request, "run.html", run=found, usage=usage, steps=steps, items=items, page=n,
            more=more, status=status, counts=store.item_counts(found["id"]),
            running=found["status"] == "running",
        )  # fmt: skip

    async def item(self, request: Request) -> Response:
        viewer = self.viewer
        store = viewer.store()
        found = store.item(request.path_params["item_id"])
        if found is None:
            return self.site.not_found(request, "no such item")
        owner = store.find_run(found["run_id"])
        steps = store.item_rows("steps", found["id"])
        calls = store.item_rows("model_calls", found["id"])
        awaiting: list[Any] = []
        if found["status"] == "running" and viewer.approvals:
            awaiting = await run_in_threadpool(waiting, viewer, owner["id"], found["id"])
        rows, span = _timeline(found, steps, calls, f"{owner['workflow']}/")
        return self.site.page(
            request, "item.html", item=found, run=owner, rows=rows, span=span,
            calls=len(calls), waiting=awaiting, usage=_sum(calls),
        )  # fmt: skip

    async def call(self, request: Request) -> Response:
        store = self.viewer.store()
        found = store.call(request.path_params["call_id"])
        if found is None:
            return self.site.not_found(request, "no such model call")
        owner = store.item(found["item_id"]) if found["item_id"] else None
        return self.site.page(
            request, "call.html", call=found, item=owner, messages=fmt.messages(found["prompt"]),
            extras=fmt.request_extras(found["prompt"]), response=fmt.pretty(found["response"]),
        )  # fmt: skip

    async def cost(self, request: Request) -> Response:
        days = page_number(request.query_params.get("days") or "30")
        since = time.time() - days * 86400
        store = self.viewer.store()
        charts = {}
        for by in ("day", "workflow", "step", "model"):
            rows = list(store.cost_by(by, since=since))[:25]
            shown = [
                fmt.Bar(
                    str(r["key"]),
                    float(r["cost"] or 0),
                    f"{fmt.money(r['cost'], r['unpriced'])} · {fmt.count(r['calls'])}",
                )
                for r in rows
            ]
            charts[by] = (fmt.bars(shown), rows)
        return self.site.page(request, "cost.html", charts=charts, days=days)

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")


def _day(text: str | None, *, end: bool = False) -> float | None:
    """A YYYY-MM-DD date as a local timestamp (its end with `end`), or None."""
    if not text:
        return None
    try:
        start = datetime.strptime(text, "%Y-%m-%d").timestamp()
    except ValueError:
        return None
    return start + 86400 if end else start


def _query(filters: dict[str, str | None]) -> str:
    return urlencode({k: v for k, v in filters.items() if v})


def _relative(step: dict[str, Any], prefix: str) -> dict[str, Any]:
    step["name"] = str(step["path"]).removeprefix(prefix)
    return step


def _sum(calls: list[Row]) -> dict[str, Any]:
    total: dict[str, Any] = {"calls": len(calls), "cached": 0, "tokens": 0, "cost": 0.0,
                             "unpriced": 0}  # fmt: skip
    for c in calls:
        if c["cached"]:
            total["cached"] += 1
            continue
        total["tokens"] += (c["input_tokens"] or 0) + (c["output_tokens"] or 0)
        if c["cost"] is None:
            total["unpriced"] += 1
        else:
            total["cost"] += float(c["cost"])
    return total


def _timeline(
    item: Row, steps: list[Row], calls: list[Row], prefix: str
) -> tuple[list[dict[str, Any]], float]:
    """An item's steps and model calls in the order they started, each placed on the item's
    time span (offset and width in percent) and indented by its depth."""
    start = float(item["started_at"])
    ends = [float(item["ended_at"] or 0)]
    ends += [float(s["started_at"]) + float(s["latency_ms"] or 0) / 1000 for s in steps]
    ends += [float(c["started_at"]) + float(c["latency_ms"] or 0) / 1000 for c in calls]
    starts = [start, *(float(s["started_at"]) for s in steps),
              *(float(c["started_at"]) for c in calls)]  # fmt: skip
    start = min(starts)
    span = max(max(ends) - start, 1e-6)
    rows: list[dict[str, Any]] = []
    for s in steps:
        name = str(s["path"]).removeprefix(prefix)
        rows.append({"type": "step", "row": s, "name": name, "depth": str(s["path"]).count("/"),
                     "at": float(s["started_at"]), "ms": float(s["latency_ms"] or 0)})  # fmt: skip
    for c in calls:
        name = str(c["step_path"] or "").removeprefix(prefix)
        rows.append({"type": "call", "row": c, "name": name,
                     "depth": str(c["step_path"] or "").count("/") + 1,
                     "at": float(c["started_at"]), "ms": float(c["latency_ms"] or 0),
                     "messages": fmt.messages(c["prompt"])})  # fmt: skip
    rows.sort(key=lambda r: (r["at"], r["depth"], r["type"] == "call"))
    for r in rows:
        r["left"] = 100 * (r["at"] - start) / span
        r["width"] = max(0.4, min(100 - r["left"], 100 * r["ms"] / 1000 / span))
    return rows, span
