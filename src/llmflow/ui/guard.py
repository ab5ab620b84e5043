"""What every request to the viewer passes first: the host, the token, the origin of a POST,
and the security headers of every response.

Bound to 127.0.0.1 the app answers only requests addressed to a loopback name (no DNS
rebinding); bound elsewhere it requires a token (`?token=`, then a cookie, or an
`Authorization: Bearer` header). Every POST must come from the app's own origin (Origin or
Referer). Pages hold no script at all, and the Content-Security-Policy forbids any.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from .viewer import Viewer

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
COOKIE = "llmflow_ui_token"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class Guard(BaseHTTPMiddleware):
    """The checks above, before any page."""

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
                return secure(response)
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            cookie = request.cookies.get(COOKIE, "")
            if not any(hmac.compare_digest(t, v.token) for t in (bearer, cookie) if t):
                return secure(PlainTextResponse(
                    "a token is required: open the address `llmflow ui` printed", status_code=401
                ))  # fmt: skip
        if request.method not in ("GET", "HEAD") and not same_origin(request):
            return secure(PlainTextResponse("cross-origin request refused", status_code=403))
        return secure(await call_next(request))


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from this app's own pages."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


def secure(response: Response) -> Response:
    """`response` with the security headers every answer carries."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
