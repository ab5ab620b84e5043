"""What the viewer's pages share: the store, the tokens, the durable client (`Viewer`), and
the templates they are rendered with (`Site`)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..redact import redact
from ..store.sqlite import RunStore
from . import format as fmt

PAGE = 50
"""Rows per page of runs and of items."""


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


class Site:
    """The viewer and its templates: what every page handler renders with."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.env = environment()

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        html = self.env.get_template(name).render(
            request=request, form_token=self.viewer.form_token, path=request.url.path, **context
        )
        return HTMLResponse(html, status_code=status_code)

    def not_found(self, request: Request, what: str) -> Response:
        return self.page(request, "error.html", status_code=404, message=what)


def _finalize(value: Any) -> Any:
    """Every value a template shows, without credentials (`Markup` is the app's own HTML)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return redact(value)
    return value


def environment() -> Environment:
    """The templates, escaping everything and redacting every text they show."""
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


def page_number(text: str | None) -> int:
    """A page number (or a count of days) from a query: 1 to 1,000,000, 1 when not one."""
    try:
        return max(1, min(int(text or 1), 1_000_000))
    except ValueError:
        return 1
