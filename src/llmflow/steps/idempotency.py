"""The idempotency key of the side effect running now.

It lives here, apart from `llmflow.durable` (which loads the durable engine, DBOS), so that
tools may read it cheaply wherever they run - `llmflow chat` included.
`llmflow.durable.current_idempotency_key` is the same function.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_key: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "llmflow_idempotency_key", default=None
)


def current_idempotency_key() -> str | None:
    """The idempotency key of the side effect running now, or None outside one.

    It is `<run id>/<item index>/<step path>` in a durable run: the same when a run resumes
    and the effect runs again after a crash, different for every other effect. Pass it to
    the service the effect calls (a payment API's `Idempotency-Key` header, a unique column)
    so that the second attempt is recognised and not done twice.
    """
    return _key.get()


@contextlib.contextmanager
def idempotency_key(key: str) -> Iterator[None]:
    """Make `key` the current idempotency key inside the block."""
    token = _key.set(key)
    try:
        yield
    finally:
        _key.reset(token)
