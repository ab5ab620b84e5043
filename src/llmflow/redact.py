"""One redaction filter for everything llmflow stores or prints.

`redact(text)` removes credentials from a text: the API keys this process was configured
with (`register_secret`, which the gateway calls for `OPENAI_API_KEY` and for the password of
a base URL such as `http://user:KEY@host/v1`), anything shaped like a provider key
(`sk-...`), bearer and basic tokens, `Authorization` header values, and the user and password
of URLs.
Every place where text leaves the process goes through it: error messages raised by the
provider client, the run store's rows, durable checkpoints, results files and the CLI's
console. A configured key is removed wherever it appears, even in a model's output.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

REDACTED = "[redacted]"
"""What stands in place of a removed credential."""

MIN_SECRET = 8
"""Configured secrets shorter than this are not registered: a self-hosted server's dummy key
(`x`, `none`) would otherwise be cut out of every text it occurs in."""

# Each pattern runs only when a cheap substring test finds its marker: most texts (prompts,
# outputs) hold none, and then redaction costs a few substring searches.
_SK = re.compile(r"(?<![A-Za-z0-9_\-])sk-[A-Za-z0-9_\-]{8,}")
_URL_USER = re.compile(r"://[^\s/@\"'<>]+@")
_AUTH = re.compile(
    r"""(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;}]+""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{6,}", re.IGNORECASE)
_PARAM = re.compile(
    r"""([?&](?:api[_\-]?key|key|token|access_token|password)=)[^&\s"'<>]+""", re.IGNORECASE
)
_KEPT = rf"\1{REDACTED}"

_secrets: set[str] = set()
_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(secret: str | None) -> None:
    """Remove `secret` from every text redacted from now on (keys shorter than `MIN_SECRET`
    characters are ignored)."""
    global _secret_pattern
    if not secret or len(secret) < MIN_SECRET or secret in _secrets:
        return
    with _lock:
        _secrets.add(secret)
        alternatives = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def register_url(url: str | None) -> None:
    """Register the password (and a user name that looks like a key) of `url`."""
    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    register_secret(parts.password)
    if parts.username and parts.password is None:
        register_secret(parts.username)  # http://KEY@host/: the key as the user name
    if parts.username is not None:  # what an `Authorization: Basic` header sends
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        register_secret(base64.b64encode(credentials.encode()).decode())


def may_hold_credentials(text: str) -> bool:
    """Whether `redact(text)` could change `text`: the markers its patterns start from (a
    few substring searches; False means `text` is returned as it is)."""
    if _secret_pattern is not None and _secret_pattern.search(text):
        return True
    if "sk-" in text or ("://" in text and "@" in text):
        return True
    lower = _folded(text)
    return _has_param(lower) or "authorization" in lower or "bearer" in lower or "basic" in lower


def _folded(text: str) -> str:
    """`text` as the patterns' IGNORECASE sees it, for the substring tests: case-folded, not
    lower-cased (it also matches "ſ" for "s" and "K" for "k"), and the dotless "ı" as "i"."""
    folded = text.casefold()
    return folded.replace("ı", "i") if "ı" in folded else folded


def _has_param(lower: str) -> bool:
    """Whether case-folded `lower` may hold a credential in a URL parameter (`_PARAM`): each
    of its names ends in `key`, `token` or `password` before the `=`. Not any `=`: tool
    results, code and URLs hold many, and each sent a whole row through every pattern."""
    return "=" in lower and ("key=" in lower or "token=" in lower or "password=" in lower)


def redact_all(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """`values` with each string in it redacted: the row of a database write. One test of
    all its strings together first (most rows hold no credential-like text), so a row of 15
    values costs one pass of `may_hold_credentials`, not 15 of `redact`."""
    texts = "\0".join(filter(str.__instancecheck__, values))
    if not texts or not may_hold_credentials(texts):
        return values
    return tuple(redact(v) if isinstance(v, str) else v for v in values)


def redact(text: str) -> str:
    """`text` without credentials (see the module's docstring)."""
    if not text:
        return text
    secrets = _secret_pattern
    if secrets is not None:
        text = secrets.sub(REDACTED, text)
    if "sk-" in text:
        text = _SK.sub(REDACTED, text)
    if "://" in text and "@" in text:
        text = _URL_USER.sub("://", text)
    lower = _folded(text)
    if _has_param(lower):
        text = _PARAM.sub(_KEPT, text)
        lower = _folded(text)
    if "authorization" in lower:
        text = _AUTH.sub(_KEPT, text)
    if "bearer" in lower or "basic" in lower:
        text = _BEARER.sub(_KEPT, text)
    return text


def redact_value(value: Any) -> Any:
    """`value` with every string in it redacted (strings, and lists, tuples and dicts of
    them; other values as they are)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v) for v in value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value


def redact_url(url: str) -> str:
    """A URL without user or password (and without a key in its query), for records and
    messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return redact(url)
    if not parts.scheme:
        return redact(url)
    return redact(f"{parts.scheme}://{host}{port}{parts.path}")
