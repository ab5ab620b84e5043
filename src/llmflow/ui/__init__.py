"""`llmflow ui`: a local web viewer over the run store, with the approvals inbox.

Server-rendered HTML (Starlette, Jinja2, uvicorn), no JavaScript and no build step. Runs,
a run's items and per-step usage, an item's steps and model calls as a timeline, a model
call's messages, the approvals that durable runs wait for (approve or reject, exactly as
`llmflow approve|reject` does), and costs as charts. `create_app` builds the ASGI app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
