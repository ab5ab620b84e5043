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
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..steps.base import CodeStep
from ..steps.context import RunContext
from .effects import current_idempotency_key, run_effect


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
    # Unique per thread too: recovered runs write from DBOS's own thread.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


KEY_FIELD = "_idempotency_key"


@dataclass
class _KeysSeen:
    """The idempotency keys in one file up to `offset`, read by this process: an append
    reads only what was added since (by it or by other processes), not the whole file."""

    inode: int
    offset: int
    keys: set[str] = field(default_factory=set)


_seen: dict[Path, _KeysSeen] = {}
_seen_lock = threading.Lock()


def _keys_in(f: IO[bytes], path: Path) -> set[str]:
    """The keys of `f` (open, locked), brought up to date from where this process last read."""
    stat = os.fstat(f.fileno())
    with _seen_lock:
        seen = _seen.get(path)
        if seen is None or seen.inode != stat.st_ino or seen.offset > stat.st_size:
            seen = _seen[path] = _KeysSeen(stat.st_ino, 0)  # new, replaced or truncated
        f.seek(seen.offset)
        for line in f:
            if not line.endswith(b"\n"):  # a torn last line (a crash mid-write): not a record
                break
            seen.offset += len(line)
            if KEY_FIELD.encode() not in line:
                continue
            try:
                key = json.loads(line).get(KEY_FIELD)
            except (ValueError, AttributeError):
                continue
            if isinstance(key, str):
                seen.keys.add(key)
        return seen.keys


def append_line_once(path: Path, record: dict[str, Any], key: str | None = None) -> bool:
    """Append `record` as a JSON line unless a line with the same idempotency key is there.

    The key (default: `current_idempotency_key()`) is stored in the line itself, so the
    check and the record can never disagree after a crash. Returns whether it appended.
    """
    key = key or current_idempotency_key()
    path = path.absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = dict(record)
    if key is not None:
        line[KEY_FIELD] = key
    text = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
    with path.open("ab+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # other processes (workers) append to the same file
        try:
            if key is not None and key in _keys_in(f, path):
                return False
            end = f.seek(0, os.SEEK_END)
            if end > 0:  # after a torn last line, start a new one rather than extend it
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    text = b"\n" + text
                f.seek(0, os.SEEK_END)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return True
