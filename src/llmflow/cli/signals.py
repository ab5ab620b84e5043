"""Runs end the same way on Ctrl-C and on SIGTERM (a supervisor's stop, `kill`, a container
shutting down): the batch is cancelled, what finished is recorded, and the run says how to
resume, instead of the process vanishing with exit 143 and nothing printed."""

from __future__ import annotations

import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

EXIT_TERMINATED = 128 + signal.SIGTERM
"""The shell's code for a process ended by SIGTERM."""

_terminated = False


def run_until_signal(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)`, with SIGTERM cancelling it as Ctrl-C does."""
    import asyncio  # here, not at import: `llmflow --help` starts fast

    global _terminated
    _terminated = False

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def terminate() -> None:
            global _terminated
            _terminated = True
            task.cancel()

        try:
            loop.add_signal_handler(signal.SIGTERM, terminate)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            return await coro
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(main())


def terminated() -> bool:
    """Whether the last `run_until_signal` was ended by SIGTERM."""
    return _terminated
