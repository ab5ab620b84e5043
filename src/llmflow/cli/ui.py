"""`llmflow ui`: the run viewer and approvals inbox in a browser."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from .app import EXIT_OK, EXIT_USAGE, err, out

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    host: Annotated[
        str, typer.Option(help="Address to bind. Beyond 127.0.0.1 a token is required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="LLMFLOW_UI_TOKEN",
            help="The token every request must carry (made up when bound beyond loopback).",
        ),
    ] = None,
) -> int:
    """Browse runs, items, model calls and costs, and answer approvals, in a browser."""
    import socket

    import uvicorn  # here, not at import: `llmflow --help` starts fast

    from ..settings import Settings
    from ..ui.app import create_app

    loopback = host in LOOPBACK_HOSTS
    if not loopback and not token:
        token = secrets.token_urlsafe(24)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # connections wait for the server from now on
    except OSError as e:
        err.print(f"[bold red]error:[/] cannot listen on {host}:{port}: {e.strerror}")
        return EXIT_USAGE
    bound = sock.getsockname()[1]
    app = create_app(Settings().db_path, token=token, loopback_only=loopback)
    shown = "127.0.0.1" if loopback else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{bound}/"
    out.print(f"llmflow ui: {url}", soft_wrap=True, highlight=False)
    if token:  # printed on its own: the console removes `?token=` values from what it prints
        out.print(f"token: {token}  (open {url} and add ?token= and it)", highlight=False)
    out.print("Ctrl-C stops it", style="dim")
    config = uvicorn.Config(app, log_level=os.environ.get("LLMFLOW_UI_LOG", "warning"))
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return EXIT_OK
