"""A real HTTP server on loopback that speaks the Chat Completions API, for CLI tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], "str | dict[str, Any]"]
"""Request body -> the reply's text, or its whole message (e.g. with `tool_calls`)."""


@contextmanager
def serve(
    answer: Answer, *, models: Sequence[str] = ("fake-model",)
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve on 127.0.0.1; yields the base URL and the list of request bodies received.
    `GET /v1/models` lists `models` (not recorded in that list)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.rstrip("/").endswith("/models"):
                self.send_error(404)
                return
            listing = [{"id": m, "object": "model", "owned_by": "fake"} for m in models]
            payload = json.dumps({"object": "list", "data": listing}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({**body, "_auth": self.headers.get("Authorization")})
            content = answer(body)
            if isinstance(content, dict):  # a whole message, such as tool calls
                message = {"role": "assistant", "content": None, **content}
            else:
                message = {"role": "assistant", "content": content}
            # Token log-probabilities, when asked for: the whole answer as one likely token.
            logprobs = (
                {"content": [{"token": content, "logprob": -0.01, "bytes": None,
                              "top_logprobs": []}]}
                if body.get("logprobs") and isinstance(content, str)
                else None
            )  # fmt: skip
            payload = json.dumps(
                {
                    "id": "chatcmpl-x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                            "logprobs": logprobs,
                        }
                    ],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    class Server(ThreadingHTTPServer):
        # The default backlog of 5 overflows when a busy machine is slow to accept a run's
        # 16+ concurrent connections: the client sees resets that the real providers never send.
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()
