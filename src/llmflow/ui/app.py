"""The viewer's ASGI app: pages over the run store and the approvals inbox.

Safety: bound to 127.0.0.1 the app answers only requests addressed to a loopback name (no
DNS rebinding); bound elsewhere it requires a token (`?token=`, then a cookie, or an
`Authorization: Bearer` header). Every POST must come from the app's own origin (Origin or
Referer) and carry the form token of this process: another site cannot approve a refund.
Pages hold no script at all, and the Content-Security-Policy forbids any.
"""

from __future__ import annotations

import contextlib
import getpass
import hmac
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import ConfigError
from ..redact import redact
from ..store.base import Row
from ..store.sqlite import RunStore
from . import format as fmt

PAGE = 50
"""Rows per page of runs and of items."""
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
COOKIE = "llmflow_ui_token"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Viewer:
    """What the app's pages share: where the store is, the tokens, the durable client."""

    db_path: Path
    token: str | None = None
    """Required on every request when set (the app is bound beyond loopback)."""
    loopback_only: bool = True
    """Answer only requests addressed to a loopback host name."""
    approvals: bool = True
    """Read the durable database for pending approvals."""
    form_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    _local: threading.local = field(default_factory=threading.local)
    _client: Any = None
    _client_lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self) -> RunStore:
        """This thread's store (a SQLite connection belongs to the thread that opened it)."""
        store: RunStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = RunStore(self.db_path)
        return store

    def client(self) -> Any:
        """The DBOS client on the durable database (None: no durable run ever ran here)."""
        with self._client_lock:
            if self._client is None:  # none yet: a first durable run may create one
                from ..durable.inbox import open_client

                self._client = open_client()
            return self._client

    def close(self) -> None:
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None
        if self._client:
            self._client.destroy()
            self._client = None


def _finalize(value: Any) -> Any:
    """Every value a template shows, without credentials (`Markup` is the app's own HTML)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return redact(value)
    return value


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("llmflow.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=fmt.money, count=fmt.count, when=fmt.when, seconds=fmt.seconds, ms=fmt.ms,
        pretty=fmt.pretty, clip=fmt.clip,
    )  # fmt: skip
    return env


class _Guard(BaseHTTPMiddleware):
    def __init__(self, app: Any, viewer: Viewer) -> None:
        super().__init__(app)
        self.viewer = viewer

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        v = self.viewer
        host = request.url.hostname or ""
        if v.loopback_only and host not in LOOPBACK:
            return PlainTextResponse("this viewer answers only on 127.0.0.1", status_code=400)
        if v.token is not None:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given, v.token):
                # Move the token from the address to a cookie, and drop it from the address.
                query = urlencode([(k, x) for k, x in request.query_params.multi_items()
                                   if k != "token"])  # fmt: skip
                target = request.url.path + (f"?{query}" if query else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(COOKIE, v.token, httponly=True, samesite="strict")
                return _secure(response)
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            cookie = request.cookies.get(COOKIE, "")
            if not any(hmac.compare_digest(t, v.token) for t in (bearer, cookie) if t):
                return _secure(PlainTextResponse(
                    "a token is required: open the address `llmflow ui` printed", status_code=401
                ))  # fmt: skip
        if request.method not in ("GET", "HEAD") and not _same_origin(request):
            return _secure(PlainTextResponse("cross-origin request refused", status_code=403))
        return _secure(await call_next(request))


def _same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from this app's own pages."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_app(
    db_path: Path | str,
    *,
    token: str | None = None,
    loopback_only: bool = True,
    approvals: bool = True,
) -> Starlette:
    """The viewer over the run store at `db_path`. `token`: required on every request;
    `loopback_only`: answer only requests addressed to 127.0.0.1 or localhost."""
    viewer = Viewer(Path(db_path), token=token, loopback_only=loopback_only, approvals=approvals)
    env = _environment()

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        html = env.get_template(name).render(
            request=request, form_token=viewer.form_token, path=request.url.path, **context
        )
        return HTMLResponse(html, status_code=status_code)

    def not_found(request: Request, what: str) -> Response:
        return page(request, "error.html", status_code=404, message=what)

    async def runs(request: Request) -> Response:
        q = request.query_params
        n = _page_number(q.get("page"))
        filters = {k: q.get(k) or None for k in ("workflow", "status", "since", "until")}
        store = viewer.store()
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
        return page(
            request, "runs.html", runs=rows, usage=usage, filters=filters, page=n, more=more,
            workflows=store.workflows(), running=any(r["status"] == "running" for r in rows),
            query=_query(filters),
        )  # fmt: skip

    async def run(request: Request) -> Response:
        store = viewer.store()
        try:
            found = store.find_run(request.path_params["run_id"])
        except ConfigError as e:
            return not_found(request, str(e))
        q = request.query_params
        n, status = _page_number(q.get("page")), q.get("status") or None
        items = store.item_page(found["id"], limit=PAGE + 1, offset=(n - 1) * PAGE, status=status)
        more, items = len(items) > PAGE, list(items[:PAGE])
        usage = store.usage([found["id"]]).get(found["id"])
        prefix = f"{found['workflow']}/"
        steps = [_relative(dict(s), prefix) for s in store.step_usage(found["id"])]
        return page(
            request, "run.html", run=found, usage=usage, steps=steps, items=items, page=n,
            more=more, status=status, counts=store.item_counts(found["id"]),
            running=found["status"] == "running",
        )  # fmt: skip

    async def item(request: Request) -> Response:
        store = viewer.store()
        found = store.item(request.path_params["item_id"])
        if found is None:
            return not_found(request, "no such item")
        owner = store.find_run(found["run_id"])
        steps = store.item_rows("steps", found["id"])
        calls = store.item_rows("model_calls", found["id"])
        waiting: list[Any] = []
        if found["status"] == "running" and viewer.approvals:
            waiting = await run_in_threadpool(_waiting, viewer, owner["id"], found["id"])
        rows, span = _timeline(found, steps, calls, f"{owner['workflow']}/")
        return page(
            request, "item.html", item=found, run=owner, rows=rows, span=span,
            calls=len(calls), waiting=waiting, usage=_sum(calls),
        )  # fmt: skip

    async def call(request: Request) -> Response:
        store = viewer.store()
        found = store.call(request.path_params["call_id"])
        if found is None:
            return not_found(request, "no such model call")
        owner = store.item(found["item_id"]) if found["item_id"] else None
        return page(
            request, "call.html", call=found, item=owner, messages=fmt.messages(found["prompt"]),
            extras=fmt.request_extras(found["prompt"]), response=fmt.pretty(found["response"]),
        )  # fmt: skip

    async def approvals_page(request: Request) -> Response:
        error = None
        pending: list[dict[str, Any]] = []
        if viewer.approvals:
            try:
                pending = await run_in_threadpool(_inbox, viewer)
            except ConfigError as e:
                error = str(e)
        store = viewer.store()
        for p in pending:
            p["item"] = store.item(p["item_id"])
            calls = store.item_rows("model_calls", p["item_id"]) if p["item"] else []
            p["reasoning"] = _reasoning(calls)
        return page(
            request, "approvals.html", pending=pending, error=error,
            done=request.query_params.get("done"),
        )  # fmt: skip

    async def decide(request: Request) -> Response:
        form = await request.form()
        if not hmac.compare_digest(str(form.get("form_token", "")), viewer.form_token):
            return PlainTextResponse("this form is out of date: reload the page", status_code=403)
        decision = str(form.get("decision", ""))
        workflow_id, step = str(form.get("workflow_id", "")), str(form.get("step", ""))
        if decision not in ("approve", "reject") or not workflow_id or not step:
            return PlainTextResponse("approve or reject what?", status_code=400)
        comment = str(form.get("comment", "")).strip() or None

        def send() -> Any:
            from ..durable.inbox import decide

            client = viewer.client()
            return decide(
                client, workflow_id, approved=decision == "approve", comment=comment,
                step=step, by=f"{_user()} (llmflow ui)",
            )  # fmt: skip

        try:
            chosen = await run_in_threadpool(send)
        except ConfigError as e:
            return page(request, "error.html", status_code=409, message=str(e))
        verb = "approved" if decision == "approve" else "rejected"
        done = f"{verb} {chosen.path} in {chosen.workflow_id}"
        return RedirectResponse(f"/approvals?{urlencode({'done': done})}", status_code=303)

    async def cost(request: Request) -> Response:
        days = _page_number(request.query_params.get("days") or "30")
        since = time.time() - days * 86400
        store = viewer.store()
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
        return page(request, "cost.html", charts=charts, days=days)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", runs),
        Route("/runs/{run_id}", run),
        Route("/items/{item_id}", item),
        Route("/calls/{call_id}", call),
        Route("/approvals", approvals_page),
        Route("/approvals/decide", decide, methods=["POST"]),
        Route("/cost", cost),
        Route("/health", health),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, viewer=viewer)],
        lifespan=lambda _app: _closing(viewer),
    )
    app.state.viewer = viewer
    return app


@contextlib.asynccontextmanager
async def _closing(viewer: Viewer) -> AsyncIterator[None]:
    yield
    viewer.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"


def _page_number(text: str | None) -> int:
    try:
        return max(1, min(int(text or 1), 1_000_000))
    except ValueError:
        return 1


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


def _reasoning(calls: list[Row]) -> str:
    """What the model said last before it asked for the action (its reasoning, when any)."""
    for c in reversed(calls):
        said = [m for m in fmt.messages(c["prompt"]) if m["role"] == "assistant"]
        if c["response"]:
            return fmt.pretty(c["response"])
        if said:
            return said[-1]["content"]
    return ""


def _inbox(viewer: Viewer) -> list[dict[str, Any]]:
    from ..durable.inbox import pending_approvals

    client = viewer.client()
    if client is None:
        return []
    return [
        {"workflow_id": p.workflow_id, "run_id": p.run_id, "step": p.path,
         "item_id": f"{p.run_id}.{p.item_index}", **p.request}
        for p in pending_approvals(client)
    ]  # fmt: skip


def _waiting(viewer: Viewer, run_id: str, item_id: str) -> list[str]:
    from ..durable.inbox import pending_approvals

    try:
        client = viewer.client()
        pending = pending_approvals(client, run_id) if client is not None else []
    except ConfigError:
        return []
    return [p.path for p in pending if f"{p.run_id}.{p.item_index}" == item_id]
