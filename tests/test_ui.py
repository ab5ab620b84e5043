"""`llmflow ui` over HTTP, without a browser: every page on real runs, escaping, no keys
shown, cross-origin POSTs refused, a token required beyond loopback, `llmflow ui` starting."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmflow.settings import Settings

from .test_durable import LLMFLOW
from .ui_runs import FAKE_KEY, SCRIPT, fill


class Server:
    def __init__(self, **options: object) -> None:
        import uvicorn

        from llmflow.ui.app import create_app

        self.app = create_app(Settings().db_path, **options)  # type: ignore[arg-type]
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **headers: str) -> tuple[int, str, dict[str, str]]:
        return self.request(path, headers=headers)

    def request(
        self, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        opener = urllib.request.build_opener(_NoRedirect())
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ui-home")
    fill(home)
    return home


@pytest.fixture
def server(filled: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("LLMFLOW_HOME", str(filled))
    s = Server(approvals=False)
    yield s
    s.stop()


def _links(html: str, kind: str) -> list[str]:
    return re.findall(rf'href="/{kind}/([^"?]+)"', html)


def test_every_page_answers_escaped_and_without_keys(server: Server) -> None:
    code, runs, headers = server.get("/")
    assert code == 200 and "support" in runs
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
    assert headers["content-security-policy"].startswith("default-src 'none'")
    run_ids = _links(runs, "runs")
    assert len(set(run_ids)) == 2
    code, run, _ = server.get(f"/runs/{run_ids[0]}")
    assert code == 200 and "answer/lookup_order[1]" in run
    pages = [run]
    for item in _links(run, "items"):
        code, html, _ = server.get(f"/items/{item}")
        assert code == 200
        pages.append(html)
        for call in _links(html, "calls"):
            code, call_html, _ = server.get(f"/calls/{call}")
            assert code == 200
            pages.append(call_html)
    for path in ("/cost", "/approvals", "/?workflow=support&status=partial&since=2000-01-01"):
        code, html, _ = server.get(path)
        assert code == 200, path
        pages.append(html)
    everything = "\n".join(pages)
    # The mail's <script> is shown as text: escaped, never as a tag.
    assert SCRIPT not in everything and "<b>bold</b>" not in everything
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in everything
    assert not re.search(r"<script", everything, re.IGNORECASE)
    # A key-shaped text in a model's output is never shown.
    assert FAKE_KEY not in everything and "[redacted]" in everything


def test_a_key_written_around_the_redaction_is_not_shown(server: Server, filled: Path) -> None:
    import sqlite3

    from llmflow.redact import register_secret

    secret = "my-configured-key-0123456789"
    register_secret(secret)
    db = sqlite3.connect(Settings(home=filled).db_path)
    with db:
        db.execute("UPDATE items SET error = ? WHERE key = 'broken.eml'", (f"boom {secret}",))
    db.close()
    code, runs, _ = server.get("/")
    run_id = _links(runs, "runs")[0]
    code, html, _ = server.get(f"/runs/{run_id}?status=failed")
    assert code == 200 and "boom [redacted]" in html and secret not in html


def test_unknown_ids_are_404_and_odd_parameters_are_harmless(server: Server) -> None:
    assert server.get("/runs/nope")[0] == 404
    assert server.get("/items/nope")[0] == 404
    assert server.get("/calls/nope")[0] == 404
    assert server.get("/?page=-3&since=garbage")[0] == 200
    assert server.get("/cost?days=abc")[0] == 200


def test_a_post_from_another_origin_or_without_the_form_token_is_refused(server: Server) -> None:
    body = b"decision=approve&workflow_id=r/0&step=s&form_token=x"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    evil = server.request(
        "/approvals/decide", data=body, headers={**form, "Origin": "http://evil.example"}
    )
    assert evil[0] == 403 and "cross-origin" in evil[1]
    assert server.request("/approvals/decide", data=body, headers=form)[0] == 403  # no origin
    wrong_token = server.request(
        "/approvals/decide", data=body, headers={**form, "Origin": server.base}
    )
    assert wrong_token[0] == 403 and "out of date" in wrong_token[1]
    token = server.app.state.viewer.form_token
    ok_origin = server.request(
        "/approvals/decide",
        data=body.replace(b"form_token=x", f"form_token={token}".encode()),
        headers={**form, "Origin": server.base},
    )
    assert ok_origin[0] == 409  # accepted, but nothing waits for that decision


def test_requests_for_another_host_name_are_refused_on_loopback(server: Server) -> None:
    # DNS rebinding: a page of evil.example resolving to 127.0.0.1 cannot read the viewer.
    assert server.get("/", Host="evil.example")[0] == 400
    assert server.get("/", Host="localhost:1234")[0] == 200


def test_beyond_loopback_every_request_needs_the_token(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFLOW_HOME", str(filled))
    s = Server(token="s3cret-token", loopback_only=False)
    try:
        assert s.get("/")[0] == 401
        assert s.get("/?token=wrong")[0] == 401
        code, _, headers = s.get("/?token=s3cret-token&status=ok")
        assert code == 303 and headers["location"] == "/?status=ok"
        assert "llmflow_ui_token=s3cret-token" in headers["set-cookie"]
        assert "httponly" in headers["set-cookie"].lower()
        assert s.get("/", Cookie="llmflow_ui_token=s3cret-token")[0] == 200
        assert s.get("/", Authorization="Bearer s3cret-token")[0] == 200
    finally:
        s.stop()


def test_llmflow_ui_serves_and_makes_up_a_token_beyond_loopback(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "LLMFLOW_HOME": str(tmp_path / "home")}
    for host in ("127.0.0.1", "0.0.0.0"):
        started = time.monotonic()
        args = [*LLMFLOW, "ui", "--host", host, "--port", "0"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            found = re.search(r"llmflow ui: (http://[0-9.]+:(\d+)/)$", line)
            assert found and found.group(1).startswith(f"http://{host}:"), line
            url = f"http://127.0.0.1:{found.group(2)}/"
            if host != "127.0.0.1":
                token = re.search(r"token: (\S{20,})", proc.stdout.readline())
                assert token, "no token printed"
                with pytest.raises(urllib.error.HTTPError, match="401"):
                    urllib.request.urlopen(url, timeout=30)
                url += f"?token={token.group(1)}"
            # The token moves to a cookie (a redirect), which then lets the page through.
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
            with opener.open(url, timeout=30) as r:
                assert r.status == 200 and "Runs" in r.read().decode()
            print(f"{host}: answering after {time.monotonic() - started:.2f} s")
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
