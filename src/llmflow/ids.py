"""Identifiers: time-ordered, so that sorting by id sorts by creation."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A 24-hex-character id: nanosecond time, then 32 random bits."""
    return f"{time.time_ns():x}{os.urandom(4).hex()}"[-24:]
