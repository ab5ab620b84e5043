"""A provider's limits, and the state the gateway keeps per provider to apply them.

`ProviderLimits` says what may be sent (concurrency, requests and tokens per minute, the
timeout, retries, when the circuit breaker opens); a `Lane` holds one provider's live state:
an `AdaptiveLimit` for calls in flight, the rate limiters, and its `CircuitBreaker`. The
gateway (`gateway.py`) takes a lane for each call.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

from ..errors import ModelCallError, ProviderDownError, TransientModelError
from ..redact import redact


@dataclass(slots=True, kw_only=True)
class ProviderLimits:
    """Limits applied to every call to one provider."""

    max_concurrency: int | None = None
    """Calls in flight at once; None: adaptive (`AdaptiveLimit`), starting at
    `ADAPTIVE_START` and halving on rate limits."""
    rpm: int | None = None
    """Requests per minute; None is unlimited."""
    tpm: int | None = None
    """Tokens per minute (prompt estimate + max_tokens); None is unlimited."""
    timeout_s: float = 120.0
    """Timeout of one attempt, in seconds."""
    max_retries: int = 4
    """Retries of a transient error after the first attempt."""
    breaker_window: int = 20
    """The circuit breaker opens when `breaker_share` of the last `breaker_window` requests
    failed (0: never on that count)."""
    breaker_share: float = 0.8
    """The share of the last `breaker_window` requests that must fail to open the breaker."""
    breaker_faults: int = 3
    """The breaker opens after this many provider faults in a row (connection refused,
    401/403/404), whatever the window says."""
    breaker_cooldown_s: float = 30.0
    """Seconds an open breaker fails calls fast before it lets one call probe the provider."""


class CircuitBreaker:
    """Whether a provider is worth calling, from the outcomes of its recent requests.

    It opens after `breaker_faults` provider faults in a row (connection refused, 401/403/404:
    the provider is unusable as configured), or when `breaker_share` of the last
    `breaker_window` requests failed (every request answered 500, or timed out). Rate limits
    (429) count neither way: they are load, which the gateway's waits handle. While open,
    `check` raises `ProviderDownError`; after `breaker_cooldown_s` one call probes the
    provider, and its success closes the breaker again.
    """

    __slots__ = ("_down", "_failures", "_faults", "_opened", "_opened_at", "_probing", "_recent",
                 "endpoint", "limits")  # fmt: skip

    def __init__(self, endpoint: str, limits: ProviderLimits) -> None:
        self.endpoint = endpoint
        """The provider's URL (no credentials) or name, for the error."""
        self.limits = limits
        self._recent: deque[bool] = deque(maxlen=max(1, limits.breaker_window))
        self._failures = 0  # failed requests among `_recent`
        self._faults = 0  # provider faults in a row
        self._down: tuple[str, str] | None = None  # (what failed, the fix) while open
        self._opened_at = 0.0
        self._probing = False
        self._opened: asyncio.Future[None] | None = None  # resolved when the breaker opens

    @property
    def is_open(self) -> bool:
        return self._down is not None

    def check(self) -> bool:
        """Raise `ProviderDownError` while the breaker is open; after the cooldown, let one
        call through to probe the provider (True: the caller is that probe)."""
        if self._down is None:
            return False
        now = time.monotonic()
        if now - self._opened_at >= self.limits.breaker_cooldown_s:
            # This call probes the provider; the others still fail fast. Should it never
            # report back (cancelled), another call probes after another cooldown.
            self._probing, self._opened_at = True, now
            return True
        raise self.error()

    def error(self) -> ProviderDownError:
        assert self._down is not None
        what, fix = self._down
        return ProviderDownError(self.endpoint, what, fix)

    def succeeded(self) -> None:
        self._faults = 0
        if self._failures:
            self._push(False)
        if self._down is not None:
            self._down, self._probing = None, False

    def failed(self, error: ModelCallError) -> None:
        """Count a failed request; raise `ProviderDownError` when it opens the breaker."""
        if isinstance(error, TransientModelError) and error.rate_limited:
            return
        self._push(True)
        fault = error.fault
        self._faults = self._faults + 1 if fault is not None else 0
        limits = self.limits
        if fault is not None and (self._faults >= limits.breaker_faults or self._probing):
            what = (
                fault.what if self._faults < 2 else f"{fault.what}, {self._faults} times in a row"
            )
            self._open(what, fault.fix)
        elif self._probing or (
            limits.breaker_window
            and self._failures >= math.ceil(limits.breaker_share * limits.breaker_window)
        ):
            last = _brief(error)
            self._open(
                f"{self._failures} of its last {len(self._recent)} requests failed (the last: "
                f"{last})",
                "check the server (its logs, its load) or wait until it answers again",
            )
        if self._down is not None:
            raise self.error() from error

    def _push(self, failed: bool) -> None:
        recent = self._recent
        if len(recent) == recent.maxlen and recent[0]:
            self._failures -= 1
        recent.append(failed)
        self._failures += failed

    def _open(self, what: str, fix: str) -> None:
        self._down = (what, fix)
        self._opened_at = time.monotonic()
        self._probing = False
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)  # wake the calls waiting to retry: they fail now
        self._opened = None

    async def pause(self, seconds: float) -> None:
        """Wait `seconds` before a retry, or until the breaker opens, whichever comes first."""
        if self._down is not None:
            return
        loop = asyncio.get_running_loop()
        if self._opened is None or self._opened.get_loop() is not loop:
            self._opened = loop.create_future()
        sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
        try:
            await asyncio.wait((sleeper, self._opened), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()


ADAPTIVE_START = 256
"""Calls in flight at once to a remote provider whose limit nobody set: generous, so that a
fan-out runs at once where the provider takes it; `AdaptiveLimit` backs off from there."""
LOW_HEADROOM = 0.05
"""A response whose rate-limit headers say less than this share of the provider's requests
or tokens is left counts as a rate limit (the limit backs off before the 429s come)."""


class AdaptiveLimit:
    """Calls in flight to one provider: a semaphore whose size adapts to the provider (AIMD).

    Fixed (`adaptive=False`) it is a plain semaphore of `limit` slots: explicit limits win.
    Adaptive, it starts at `limit` and halves (down to 1) when the provider rate-limits a call
    (HTTP 429) or says in its rate-limit headers that little is left - once per round: calls
    already in flight when it halved do not halve it again. Each `ceil(limit / 4)` calls that
    succeed since then add one slot, back up to where it started.
    """

    __slots__ = ("_credit", "_waiters", "adaptive", "ceiling", "epoch", "in_flight", "limit")

    def __init__(self, limit: int, *, adaptive: bool = False) -> None:
        self.limit = limit
        """Calls allowed in flight now."""
        self.ceiling = limit
        self.adaptive = adaptive
        self.in_flight = 0
        self.epoch = 0
        """Bumped at each back-off: a call remembers the epoch it started in."""
        self._credit = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch the call starts in (for `rate_limited`)."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return self.epoch
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted, then cancelled: hand the slot on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        return self.epoch

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.in_flight < self.limit:
            waiter = waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def succeeded(self) -> None:
        if self.adaptive and self.limit < self.ceiling:
            self._credit += 1
            if self._credit * 4 >= self.limit:
                self._credit = 0
                self.limit += 1
                self._wake()

    def rate_limited(self, epoch: int) -> None:
        """The provider pushed back on a call that started in `epoch`: halve the limit, once
        per round."""
        if self.adaptive and epoch == self.epoch:
            self.epoch += 1
            self._credit = 0
            self.limit = max(1, self.limit // 2)


@dataclass(slots=True)
class Lane:
    """Per-provider concurrency and rate state, and its circuit breaker."""

    limits: ProviderLimits
    endpoint: str
    semaphore: AdaptiveLimit = field(init=False)
    rpm: AsyncLimiter | None = field(init=False)
    tpm: AsyncLimiter | None = field(init=False)
    breaker: CircuitBreaker = field(init=False)

    def __post_init__(self) -> None:
        fixed = self.limits.max_concurrency
        self.semaphore = AdaptiveLimit(fixed or ADAPTIVE_START, adaptive=fixed is None)
        self.rpm = AsyncLimiter(self.limits.rpm, 60) if self.limits.rpm else None
        self.tpm = AsyncLimiter(self.limits.tpm, 60) if self.limits.tpm else None
        self.breaker = CircuitBreaker(self.endpoint, self.limits)


Backoff = Callable[[int], float]
"""Seconds to wait before retry number n (1, 2, ...) when the provider named no wait."""


def exponential_backoff(retry: int) -> float:
    """0.5 s, 1 s, 2 s, ... capped at 30 s, plus up to 0.5 s of jitter."""
    return float(min(30.0, 0.5 * 2 ** (retry - 1)) + random.uniform(0, 0.5))


def _brief(error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split())
    return redact(text if len(text) <= limit else text[: limit - 1] + "…")
