"""Action steps: code with side effects, run exactly once per durable run.

`action(fn)` is a code step that runs as a durable effect: a completed action is not run
again when its run resumes; an action cut off mid-way runs again with the same
idempotency key (`current_idempotency_key()`), which it passes to whatever it changes.
`write_once` and `append_line_once` are built-in effects that honour the key for files.
"""

from __future__ import annotations

import fcntl
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..runtime.context import RunContext
from ..steps.base import CodeStep
from .steps import current_idempotency_key, run_effect


class ActionStep(CodeStep[Any, Any]):
    """A code step whose function changes the world (writes, sends, pays)."""

    kind = "action"

    async def run(self, input: Any, ctx: RunContext) -> Any:
        async def effect() -> Any:
            result = self.fn(input, ctx) if self._wants_ctx else self.fn(input)
            if inspect.isawaitable(result):
                return await result
            return result

        return await run_effect(effect, run_id=ctx.run_id, item_id=ctx.item_id, path=ctx.path)


def action(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Make an action step from a function: `action(send_refund)` or `@action(name="pay")`."""

    def wrap(f: Callable[..., Any]) -> ActionStep:
        return ActionStep(name or f.__name__, f)

    return wrap(fn) if fn is not None else wrap


def write_once(path: Path, data: bytes | str) -> None:
    """Write a whole file atomically (a temporary file renamed over it): running it again
    with the same data leaves the same file, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


KEY_FIELD = "_idempotency_key"


def append_line_once(path: Path, record: dict[str, Any], key: str | None = None) -> bool:
    """Append `record` as a JSON line unless a line with the same idempotency key is there.

    The key (default: `current_idempotency_key()`) is stored in the line itself, so the
    check and the record can never disagree after a crash. Returns whether it appended.
    """
    key = key or current_idempotency_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = dict(record)
    if key is not None:
        line[KEY_FIELD] = key
    text = json.dumps(line, ensure_ascii=False) + "\n"
    with path.open("a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # other processes (workers) append to the same file
        try:
            if key is not None:
                f.seek(0)
                marker = json.dumps(key)
                for existing in f:
                    if marker in existing and json.loads(existing).get(KEY_FIELD) == key:
                        return False
            f.seek(0, os.SEEK_END)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return True
