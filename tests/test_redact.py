"""The one redaction filter: what it removes, and the places that write through it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from llmflow.durable.serialization import JsonSerializer
from llmflow.errors import ModelCallError
from llmflow.redact import (
    REDACTED,
    redact,
    redact_all,
    redact_url,
    register_secret,
    register_url,
)
from llmflow.store.sqlite import RunStore


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Incorrect key: sk-proj-abcDEF1234567890.", f"Incorrect key: {REDACTED}."),
        ("Authorization: Bearer abc.def-ghi", f"Authorization: {REDACTED}"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', f'{{"authorization": "{REDACTED}"}}'),
        ("sent bearer tok_12345678 twice", f"sent bearer {REDACTED} twice"),
        ("GET https://h/v1?api_key=abc123&x=1", f"GET https://h/v1?api_key={REDACTED}&x=1"),
        ("cannot reach http://user:pw@10.0.0.1:8000/v1", "cannot reach http://10.0.0.1:8000/v1"),
        ("postgresql://app:secret@db/llmflow", "postgresql://db/llmflow"),
        # what the patterns match ignoring case, the cheap tests before them find too
        ("GET /v1?API_KEY=abc123", f"GET /v1?API_KEY={REDACTED}"),
        ("GET /v1?pasſword=abc123", f"GET /v1?pasſword={REDACTED}"),
        ("GET /v1?\u212aey=abc123", f"GET /v1?\u212aey={REDACTED}"),
        ("Authorızation: abc123", f"Authorızation: {REDACTED}"),
        ("Baſic dXNlcjpwYXNz", f"Baſic {REDACTED}"),
    ],
)  # fmt: skip
def test_credentials_are_removed(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "risk-assessment12 and task-force units",  # sk- inside a word is not a key
        "mail bob@example.com about http://example.com/a@b",
        "the basic plan",
        "Authorization failed",
        "lookup returned hi=42; x = y == z",  # an "=" alone is no credential
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_rows_values_are_redacted_as_each_would_be_alone() -> None:
    """The run store redacts each row in one pass (`redact_all`): the same values as redacting
    each string, whichever value holds the credential, and other values untouched."""
    register_secret("cfg-secret-0123456789")
    texts = ["plain", "Incorrect key: sk-proj-abcDEF1234567890.", "Authorization: Bearer abc.d",
             "GET https://h/v1?token=abc", "http://user:pw@host/v1", "the cfg-secret-0123456789",
             "the basic plan", ""]  # fmt: skip
    for text in texts:
        row = ("id-1", 3, None, 2.5, text, "ok")
        assert redact_all(row) == tuple(redact(v) if isinstance(v, str) else v for v in row)
    assert redact_all(("a", 1, None)) == ("a", 1, None)
    row = ("tool said hi=42", "x == y", 3)
    assert redact_all(row) is row  # the cheap test finds nothing: the row as it is


def test_configured_keys_and_url_credentials_are_removed_wherever_they_appear() -> None:
    register_secret("canary-key-0a1b2c3d")
    register_url("http://alice:hunter2-long-password@example.com/v1")
    basic = base64.b64encode(b"alice:hunter2-long-password").decode()
    text = f"the key canary-key-0a1b2c3d, the password hunter2-long-password, basic {basic}"
    shown = redact(text)
    assert "canary-key-0a1b2c3d" not in shown and "hunter2" not in shown and basic not in shown
    register_secret("short")  # too short to be a key: never cut out of texts
    assert redact("a short text") == "a short text"


def test_redact_url_keeps_the_endpoint() -> None:
    assert redact_url("http://user:KEY@host:8000/v1?key=abc") == "http://host:8000/v1"
    assert redact_url("https://api.openai.com/v1") == "https://api.openai.com/v1"


def test_the_run_store_and_durable_checkpoints_hold_no_key(tmp_path: Path) -> None:
    key = "sk-canary-store-0123456789"
    store = RunStore(tmp_path / "runs.db")
    store.start_run("r1", workflow="wf", model="m", source=f"http://u:{key}@h/v1",
                    out_dir=None, items_total=1)  # fmt: skip
    store.start_item("r1.0", run_id="r1", key="a")
    error = ModelCallError(f"HTTP 401: Incorrect API key provided: {key}")
    store.end_item("r1.0", status="failed", output={"echo": key}, error=error)
    store.close()
    assert key.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())

    serializer = JsonSerializer()
    text = serializer.serialize({"error": error, "base_url": f"http://u:{key}@h/v1"})
    assert key not in text
    assert json.loads(text)["base_url"] == "http://h/v1"
    assert serializer.deserialize(text)["base_url"] == "http://h/v1"
