"""The model gateway: the one place every model call goes through.

It resolves a model name to a provider client, and around every call it applies the
provider's limits (concurrency, requests and tokens per minute), a timeout, and retries of
transient errors with backoff (honouring the provider's Retry-After). It measures each call
(tokens, latency, attempts) and hands the record to the caller's observer, which is how runs
record their model calls. A circuit breaker per provider stops calling a provider that keeps
failing (connection refused, key refused, or most recent requests failing): calls then fail
fast with one `ProviderDownError` that names the endpoint, what failed and the fix. Single
LLM steps call `Gateway.complete` directly; agent loops reach it through the Agents SDK
adapter, so both paths share limits and records.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, TypeVar

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from ..errors import (
    BudgetExceededError,
    MissingCredentialsError,
    ModelCallError,
    ModelTimeoutError,
    ProviderDownError,
    TransientModelError,
    UnknownModelError,
)
from ..ids import new_id
from ..redact import redact, register_secret, register_url
from ..redact import redact_url as redact_url
from ..settings import Settings
from .budget import Budget, Reservation
from .cache import ResponseCache, cache_key, cacheable
from .client import ModelClient, ModelRequest, ModelResponse, Usage
from .pricing import ZERO, Pricing


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


@dataclass(slots=True, kw_only=True)
class ModelCall:
    """The record of one model call, as the gateway measured it."""

    id: str
    """Unique id of the call."""
    model: str
    """The model name as resolved, e.g. `local` or `openai:gpt-4.1-mini`."""
    provider: str
    """The provider key (limits are per provider)."""
    request: ModelRequest
    """What was asked."""
    response: ModelResponse | None
    """What came back; None when the call failed."""
    started_at: float
    """Wall-clock start, seconds since the epoch."""
    latency_s: float
    """Seconds from the first attempt getting its slot to the end (queueing for a slot is
    not counted; retries and their waits are)."""
    attempts: int
    """Attempts made (1 when the first succeeded; 0 for a cache hit)."""
    error: str | None = None
    """Why the call failed, when it did."""
    cost: Decimal | None = ZERO
    """Dollars; None when the model's price is unknown."""
    cached: bool = False
    """Answered from the response cache (free, no provider call)."""


class CallObserver(Protocol):
    """The scope a call is made in (a run context implements this): the budgets the call
    must fit, and who receives its record."""

    @property
    def budgets(self) -> Sequence[Budget]: ...

    def on_model_call(self, call: ModelCall) -> None: ...


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
class _Lane:
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


GatewayT = TypeVar("GatewayT", bound="Gateway")

ClientFactory = Callable[[str], ModelClient]
"""Builds a client for the part of a model name after `prefix:`."""


class Gateway:
    """Resolves model names and runs every model call under limits, timeout and retries."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        limits: dict[str, ProviderLimits] | None = None,
        backoff: Backoff = exponential_backoff,
        cache: ResponseCache | None = None,
    ) -> None:
        self.settings = settings or Settings()
        key = self.settings.openai_api_key
        register_secret(key.get_secret_value() if key else None)
        register_url(self.settings.base_url)
        self.pricing = Pricing(self.settings)
        self.cache = cache
        """Answers deterministic calls seen before; None: no caching."""
        self._limits = dict(limits or {})
        self._clients: dict[str, ModelClient] = {}
        self._lanes: dict[str, _Lane] = {}
        self._backoff = backoff

    def derive(self, cls: type[GatewayT]) -> GatewayT:
        """A gateway of class `cls` (a subclass) sharing this one's settings, limits, cache
        and registered clients."""
        other = cls(self.settings, limits=self._limits, backoff=self._backoff, cache=self.cache)
        other._clients = self._clients
        return other

    # -- resolution -------------------------------------------------------------------------

    def register(self, name: str, client: ModelClient) -> None:
        """Serve model names `name` and `name:<model>` with `client` (tests, custom providers)."""
        self._clients[name] = client

    def resolve(self, name: str | None = None) -> tuple[ModelClient, str]:
        """The client and the provider's model id for a model name (None: the default)."""
        name = name or self.settings.model
        if name in self._clients:
            return self._clients[name], name
        prefix, sep, rest = name.partition(":")
        if sep and prefix == "local" and rest:
            # Each local model (a catalogue name or a GGUF path) is a client of its own; the
            # `local` a test registers does not serve them.
            return self._cached(name, lambda: self._make_local_model(name)), name
        if sep and prefix in self._clients:
            return self._clients[prefix], rest
        if name == "local":
            return self._cached("local", self._make_local), "local"
        if sep and prefix == "openai" and rest:
            return self._cached("openai", self._make_openai), rest
        if not sep and self.settings.base_url:
            return self._cached("openai", self._make_openai), name
        raise UnknownModelError(
            f"unknown model {name!r}: use 'local' (the embedded model), "
            "'local:<name or path.gguf>' (`llmflow models` lists them), 'openai:<model>' "
            "(needs OPENAI_API_KEY), or a model served at OPENAI_BASE_URL / --base-url"
        )

    def _cached(self, key: str, make: Callable[[], ModelClient]) -> ModelClient:
        if key not in self._clients:
            self._clients[key] = make()
        return self._clients[key]

    def _make_local(self) -> ModelClient:
        from .embedded import EmbeddedClient

        return EmbeddedClient(prefix_reuse=self.settings.embedded_prefix_reuse)

    def _make_local_model(self, name: str) -> ModelClient:
        """`local:<name-or-path>`: a catalogue model or a GGUF file."""
        from .embedded import EmbeddedClient
        from .local_models import resolve_local

        # Joins and verifies a chunked model on its first use (once per state directory).
        found = resolve_local(name, self.settings.home)
        return EmbeddedClient(
            found.path,
            prefix_reuse=self.settings.embedded_prefix_reuse,
            name=name,
            context_tokens=found.context_tokens,
        )

    def _make_openai(self) -> ModelClient:
        from .openai_compat import OpenAIClient

        key = self.settings.openai_api_key
        base_url = self.settings.base_url
        if key is None and base_url is None:
            raise MissingCredentialsError(
                "no OpenAI key found: set OPENAI_API_KEY (in the environment or .env), "
                "or use --model local for the embedded model"
            )
        # Self-hosted servers (vLLM, Ollama, llama.cpp) accept any key.
        return OpenAIClient(api_key=key.get_secret_value() if key else "unused", base_url=base_url)

    def _lane(self, provider: str, endpoint: str | None = None) -> _Lane:
        lane = self._lanes.get(provider)
        if lane is None:
            limits = self._limits.get(provider) or ProviderLimits(
                # The embedded model computes one call at a time: queue here, not in its lock.
                max_concurrency=1 if provider == "local" else self.settings.max_concurrency,
                rpm=self.settings.rpm,
                tpm=self.settings.tpm,
                timeout_s=self.settings.timeout_s,
                max_retries=self.settings.max_retries,
                breaker_window=self.settings.breaker_window,
                breaker_share=self.settings.breaker_share,
            )
            lane = self._lanes[provider] = _Lane(limits, endpoint or provider)
        return lane

    # -- calls ------------------------------------------------------------------------------

    async def complete(
        self,
        request: ModelRequest,
        *,
        model: str | None = None,
        observer: CallObserver | None = None,
        use_cache: bool = True,
        call_id: str | None = None,
        validate: Callable[[ModelResponse], object] | None = None,
    ) -> ModelResponse:
        """Run one model call: from the cache when it can, else under its provider's limits
        and the observer's budgets; report it to `observer` (under `call_id`, when given).

        `validate` checks an answer the way the caller will use it (it raises when the answer
        is unusable): only an answer that passes is stored in the response cache, and a cached
        answer that fails is dropped and the call made again. The answer is returned either
        way; the caller decides what an invalid one means.
        """
        name = model or self.settings.model
        client, model_id = self.resolve(name)
        started_at = time.time()
        key = None
        if use_cache and self.cache is not None and cacheable(request):
            key = cache_key(name, request)
            hit = self.cache.get(key)
            if hit is not None and validate is not None and not _passes(validate, hit):
                self.cache.drop(key)
                hit = None
            if hit is not None:
                if observer is not None:
                    observer.on_model_call(
                        ModelCall(id=call_id or new_id(), model=name, provider=client.provider,
                                  request=request, response=hit, started_at=started_at,
                                  latency_s=0.0, attempts=0, cached=True)
                    )  # fmt: skip
                return hit
        lane = self._lane(client.provider, client.endpoint)
        breaker = lane.breaker
        # Fails fast, before any budget or record, while the provider is down.
        probe = breaker.check() if breaker.is_open else False
        holds = self._reserve(observer.budgets if observer else (), client, model_id, request)
        t0: float | None = None  # set when the first attempt gets its slot: queueing is not latency
        attempts = 0
        response: ModelResponse | None = None
        error: BaseException | None = None

        async def attempt() -> ModelResponse:
            nonlocal attempts, t0, probe
            if not probe:
                probe = breaker.check()
            if lane.rpm is not None:
                await lane.rpm.acquire()
            if lane.tpm is not None:
                await lane.tpm.acquire(min(_token_estimate(client, request), lane.tpm.max_rate))
            slots = lane.semaphore
            epoch = await slots.acquire()
            try:
                if not probe:  # it may have opened while this call waited for its slot
                    probe = breaker.check()
                attempts += 1
                if t0 is None:
                    t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(lane.limits.timeout_s):
                        answer = await client.complete(model_id, request)
                except TimeoutError as e:
                    timeout = TransientModelError(
                        f"no answer within {lane.limits.timeout_s:g}s "
                        "(raise LLMFLOW_TIMEOUT to wait longer)",
                        model=name,
                    )
                    timeout.__cause__ = e
                    breaker.failed(timeout)
                    raise timeout from e
                except ModelCallError as e:
                    if isinstance(e, TransientModelError) and e.rate_limited:
                        slots.rate_limited(epoch)
                    breaker.failed(e)  # raises ProviderDownError when this opens the breaker
                    raise
                breaker.succeeded()
                headroom = answer.headroom
                if headroom is not None and headroom < LOW_HEADROOM:
                    slots.rate_limited(epoch)
                else:
                    slots.succeeded()
                return answer
            finally:
                slots.release()

        try:
            try:
                # The first attempt runs outside tenacity, which costs ~20-40 us a call: the
                # common case pays nothing for retries it does not need.
                response = await attempt()
            except TransientModelError as first:
                if lane.limits.max_retries == 0:
                    raise
                await breaker.pause(self._wait(first, 1))
                retrying = AsyncRetrying(
                    sleep=breaker.pause,
                    retry=retry_if_exception_type(TransientModelError),
                    stop=stop_after_attempt(lane.limits.max_retries),
                    wait=lambda state: self._wait(
                        state.outcome.exception() if state.outcome else None,
                        state.attempt_number + 1,
                    ),
                    reraise=True,
                )
                response = await retrying(attempt)
            assert response is not None
        except TransientModelError as e:
            error = e
            if isinstance(e.__cause__, TimeoutError):
                raise ModelTimeoutError(f"{e} after {attempts} attempts", model=name) from e
            raise ModelCallError(
                f"{e} (gave up after {attempts} attempts)", model=name, fault=e.fault
            ) from e
        except BaseException as e:
            error = e
            raise
        finally:
            latency = time.perf_counter() - t0 if t0 is not None else 0.0
            # Providers do not charge failed calls; a success costs what its usage says.
            cost = (
                self.pricing.cost(client.provider, model_id, response.usage, latency)
                if response is not None
                else ZERO
            )
            tokens = response.usage.total_tokens if response is not None else 0
            for budget, held in holds:
                budget.settle(held, cost, tokens)
            if (
                response is not None
                and key is not None
                and self.cache is not None
                and (validate is None or _passes(validate, response))
            ):
                self.cache.put(key, name, response)
            if observer is not None:
                observer.on_model_call(
                    ModelCall(
                        id=call_id or new_id(),
                        model=name,
                        provider=client.provider,
                        request=request,
                        response=response,
                        started_at=started_at,
                        latency_s=latency,
                        attempts=attempts,
                        error=None if error is None else _describe(error),
                        cost=cost,
                    )
                )
        return response

    def _reserve(
        self,
        budgets: Sequence[Budget],
        client: ModelClient,
        model_id: str,
        request: ModelRequest,
    ) -> list[tuple[Budget, Reservation]]:
        """Book the call's worst case (prompt + max_tokens at the model's price) in every
        budget, or book nothing and raise `BudgetExceededError`."""
        if not budgets:
            return []
        prompt = _prompt_tokens(client, request)
        worst = Usage(input_tokens=prompt, output_tokens=request.sampling.max_tokens)
        limits = self._lane(client.provider).limits
        cost = self.pricing.cost(client.provider, model_id, worst, limits.timeout_s)
        holds: list[tuple[Budget, Reservation]] = []
        try:
            for budget in budgets:
                holds.append((budget, budget.reserve(cost, worst.total_tokens)))
        except BudgetExceededError:
            for budget, held in holds:
                budget.release(held)
            raise
        return holds

    def _wait(self, error: BaseException | None, retry: int) -> float:
        """Wait what the provider asked for (Retry-After, capped at 2 min), else back off."""
        if isinstance(error, TransientModelError) and error.retry_after is not None:
            return min(error.retry_after, 120.0)
        return self._backoff(retry)

    async def aclose(self) -> None:
        """Close every client the gateway opened."""
        for client in self._clients.values():
            await client.aclose()


def _prompt_tokens(client: ModelClient, request: ModelRequest) -> int:
    return client.count_tokens("".join(m.content or "" for m in request.messages))


def _token_estimate(client: ModelClient, request: ModelRequest) -> int:
    return _prompt_tokens(client, request) + request.sampling.max_tokens


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return redact(f"{type(error).__name__}: {error}")


def _brief(error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split())
    return redact(text if len(text) <= limit else text[: limit - 1] + "…")


def _passes(validate: Callable[[ModelResponse], object], response: ModelResponse) -> bool:
    try:
        validate(response)
    except Exception:
        return False
    return True
