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
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from ..errors import (
    BudgetExceededError,
    MissingCredentialsError,
    ModelCallError,
    ModelTimeoutError,
    TransientModelError,
    UnknownModelError,
)
from ..ids import new_id
from ..redact import redact, register_secret, register_url
from ..redact import redact_url as redact_url
from ..settings import Settings
from .budget import Budget, Reservation
from .cache import ResponseCache, cache_key, cacheable
from .calls import CallObserver as CallObserver
from .calls import ModelCall as ModelCall
from .client import ModelClient, ModelRequest, ModelResponse, Usage
from .limits import ADAPTIVE_START as ADAPTIVE_START
from .limits import LOW_HEADROOM as LOW_HEADROOM
from .limits import AdaptiveLimit as AdaptiveLimit
from .limits import Backoff as Backoff
from .limits import CircuitBreaker as CircuitBreaker
from .limits import Lane
from .limits import ProviderLimits as ProviderLimits
from .limits import exponential_backoff as exponential_backoff
from .pricing import ZERO, Pricing

# The call record (`calls.py`) and the per-provider limits (`limits.py`) live beside the
# gateway; their names stay importable from here, where callers have always found them.


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
        self._lanes: dict[str, Lane] = {}
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

    def _lane(self, provider: str, endpoint: str | None = None) -> Lane:
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
            lane = self._lanes[provider] = Lane(limits, endpoint or provider)
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
        holds = await self._reserve(observer.budgets if observer else (), client, model_id, request)
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

    async def _reserve(
        self,
        budgets: Sequence[Budget],
        client: ModelClient,
        model_id: str,
        request: ModelRequest,
    ) -> list[tuple[Budget, Reservation]]:
        """Book the call's worst case (prompt + max_tokens at the model's price) in every
        budget, or book nothing and raise `BudgetExceededError`. A call that would fit once
        the calls in flight settle waits for them (`Budget.waits`)."""
        if not budgets:
            return []
        prompt = _prompt_tokens(client, request)
        worst = Usage(input_tokens=prompt, output_tokens=request.sampling.max_tokens)
        limits = self._lane(client.provider).limits
        cost = self.pricing.cost(client.provider, model_id, worst, limits.timeout_s)
        while True:
            holds: list[tuple[Budget, Reservation]] = []
            try:
                for budget in budgets:
                    holds.append((budget, budget.reserve(cost, worst.total_tokens)))
                return holds
            except BudgetExceededError:
                for budget, held in holds:
                    budget.release(held)
                refusing = [b for b in budgets if not b.fits(cost, worst.total_tokens)]
                if not refusing or not all(b.waits(cost, worst.total_tokens) for b in refusing):
                    raise
                await refusing[0].settled()

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


def _passes(validate: Callable[[ModelResponse], object], response: ModelResponse) -> bool:
    try:
        validate(response)
    except Exception:
        return False
    return True
