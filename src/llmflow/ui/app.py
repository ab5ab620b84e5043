"""The viewer's ASGI app: pages over the run store and the approvals inbox.

Safety (`guard`): bound to 127.0.0.1 the app answers only requests addressed to a loopback
name (no DNS rebinding); bound elsewhere it requires a token (`?token=`, then a cookie, or
an `Authorization: Bearer` header). Every POST must come from the app's own origin (Origin
or Referer) and carry the form token of this process (`approvals`): another site cannot
approve a refund. Pages hold no script at all, and the Content-Security-Policy forbids any.
The pages (`pages`) read pages of rows and runs' totals, never a whole run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from .approvals import Approvals
from .guard import Guard
from .pages import Pages
from .viewer import PAGE, Site, Viewer

__all__ = ["PAGE", "Viewer", "create_app"]


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
    site = Site(viewer)
    pages, inbox = Pages(site), Approvals(site)
    routes = [
        Route("/", pages.runs),
        Route("/runs/{run_id}", pages.run),
        Route("/items/{item_id}", pages.item),
        Route("/calls/{call_id}", pages.call),
        Route("/approvals", inbox.inbox),
        Route("/approvals/decide", inbox.decide, methods=["POST"]),
        Route("/cost", pages.cost),
        Route("/health", pages.health),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, viewer=viewer)],
        lifespan=lambda _app: _closing(viewer),
    )
    app.state.viewer = viewer
    return app


@contextlib.asynccontextmanager
async def _closing(viewer: Viewer) -> AsyncIterator[None]:
    yield
    viewer.close()
