"""An OpenAI-compatible server on loopback that injects provider faults, deterministically.

A share of requests (`rate`, 20 % by default) get one of the faults a real provider or the
network between produces:

- `malformed_json`: status 200, `application/json`, a body that is not JSON;
- `html`: status 200, an HTML error page (a proxy's or a load balancer's);
- `content_type`: status 200, a `text/plain` message (a proxy's) instead of a completion;
- `truncated`: status 200, the body cut off before its Content-Length;
- `reset`: the connection reset (TCP RST) without an answer;
- `http_500`: an internal server error;
- `http_429`: a rate limit with `Retry-After`;
- `invalid_output`: a well-formed completion whose answer does not fit the output schema (a
  structured request) or is empty (free text).

Which request gets which fault depends only on the seed, the request's body and how many
times that body was received before, never on timing, so runs with any concurrency see the
same faults. One body is faulted at most `max_in_a_row` times in a row, so a client that
retries enough always gets through. The server counts the answers it gave successfully per
body (`FaultLog.answered`): a client that repeats a call that succeeded shows there.

`status=` makes every request fail with that status (`500`: a broken server; `401`: a
refused key, whose body echoes the key the request carried, as some servers do).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = (
    "malformed_json",
    "html",
    "content_type",
    "truncated",
    "reset",
    "http_500",
    "http_429",
    "invalid_output",
)

Answer = Callable[[dict[str, Any]], str]
"""Request body -> the answer's text (JSON text for a structured request)."""


@dataclass
class FaultLog:
    """What the server saw and did."""

    url: str = ""
    """The base URL (`http://127.0.0.1:<port>/v1`)."""
    requests: int = 0
    """Chat completion requests received."""
    faults: Counter[str] = field(default_factory=Counter)
    """Faults injected, by kind."""
    answered: Counter[str] = field(default_factory=Counter)
    """Successful answers, by request body digest: 2 or more means a call was repeated after
    it had succeeded."""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    """Every request body, in order of arrival."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def successes(self) -> int:
        return sum(self.answered.values())

    def repeated(self) -> dict[str, int]:
        """Request bodies answered successfully more than once."""
        return {digest: n for digest, n in self.answered.items() if n > 1}


def digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _uniform(*parts: object) -> float:
    """A number in [0, 1) from `parts`, the same in every process."""
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def completion(body: dict[str, Any], text: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-fault",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
        }
    ).encode()


@contextmanager
def serve_faults(
    answer: Answer,
    *,
    rate: float = 0.2,
    seed: int = 0,
    faults: Sequence[str] = FAULTS,
    max_in_a_row: int = 2,
    status: int | None = None,
    retry_after: str = "0.1",
    latency_s: float = 0.0,
    models: Sequence[str] = ("fake-model",),
) -> Iterator[FaultLog]:
    """Serve on 127.0.0.1; yields the `FaultLog` (its `url` is the base URL). `latency_s`:
    how long the model takes to answer (faults come at once)."""
    log = FaultLog()
    seen: Counter[str] = Counter()  # bodies received so far, by digest
    in_a_row: Counter[str] = Counter()  # faults in a row, by digest

    def choose(body: dict[str, Any]) -> tuple[str, str | None]:
        key = digest(body)
        with log.lock:
            log.requests += 1
            log.bodies.append(body)
            n = seen[key]
            seen[key] += 1
            fault = None
            if in_a_row[key] < max_in_a_row and _uniform(seed, key, n, "rate") < rate:
                fault = faults[int(_uniform(seed, key, n, "kind") * len(faults))]
            if fault is None:
                in_a_row[key] = 0
            else:
                in_a_row[key] += 1
                log.faults[fault] += 1
        return key, fault

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            listing = [{"id": m, "object": "model", "owned_by": "fake"} for m in models]
            self._send(200, json.dumps({"object": "list", "data": listing}).encode())

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if status is not None:
                with log.lock:
                    log.requests += 1
                    log.bodies.append({**body, "_auth": self.headers.get("Authorization")})
                self._status(status)
                return
            key, fault = choose(body)
            structured = bool(body.get("response_format"))
            if fault == "malformed_json":
                self._send(200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess')
            elif fault == "html":
                page = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
                self._send(200, page, "text/html")
            elif fault == "content_type":
                page = b"upstream connect error or disconnect/reset before headers"
                self._send(200, page, "text/plain")
            elif fault == "truncated":
                payload = completion(body, answer(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif fault == "reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
            elif fault == "http_500":
                self._send(500, b'{"error": {"message": "internal error", "type": "server"}}')
            elif fault == "http_429":
                self._send(
                    429,
                    b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                    headers={"Retry-After": retry_after},
                )
            elif fault == "invalid_output":
                self._send(200, completion(body, '{"unexpected": true}' if structured else ""))
            else:
                if latency_s:
                    time.sleep(latency_s)
                self._send(200, completion(body, answer(body)))
                with log.lock:
                    log.answered[key] += 1

        def _status(self, code: int) -> None:
            key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            message = (
                f"Incorrect API key provided: {key}. Authorization: Bearer {key}"
                if code == 401
                else "the server is broken"
            )
            self._send(code, json.dumps({"error": {"message": message, "code": None}}).encode())

        def _send(
            self,
            code: int,
            payload: bytes,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def finish(self) -> None:
            with contextlib.suppress(OSError):  # the connection was reset on purpose
                super().finish()

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # no resets of our own making when the machine is slow to accept

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # resets and cut-off bodies are the point

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    log.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield log
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> str:
    """A base URL on a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
