"""The approvals inbox: what durable runs wait for, approved or rejected from the browser
exactly as `llmflow approve|reject` does (durable, once). Every POST carries the form token
of this process (and `guard` checks its origin): another site cannot approve a refund."""

from __future__ import annotations

import getpass
import hmac
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ..errors import ConfigError
from ..store.base import Row
from . import format as fmt
from .viewer import Site, Viewer


class Approvals:
    """The inbox page and the approve/reject action."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.viewer = site.viewer

    async def inbox(self, request: Request) -> Response:
        viewer = self.viewer
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
        return self.site.page(
            request, "approvals.html", pending=pending, error=error,
            done=request.query_params.get("done"),
        )  # fmt: skip

    async def decide(self, request: Request) -> Response:
        viewer = self.viewer
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
            return self.site.page(request, "error.html", status_code=409, message=str(e))
        verb = "approved" if decision == "approve" else "rejected"
        done = f"{verb} {chosen.path} in {chosen.workflow_id}"
        return RedirectResponse(f"/approvals?{urlencode({'done': done})}", status_code=303)


def waiting(viewer: Viewer, run_id: str, item_id: str) -> list[str]:
    """The paths of item `item_id` that wait for a person's approval."""
    from ..durable.inbox import pending_approvals

    try:
        client = viewer.client()
        pending = pending_approvals(client, run_id) if client is not None else []
    except ConfigError:
        return []
    return [p.path for p in pending if f"{p.run_id}.{p.item_index}" == item_id]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"


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
