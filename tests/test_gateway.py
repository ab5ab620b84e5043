from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmflow import (
    Gateway,
    Message,
    MissingCredentialsError,
    ModelCall,
    ModelCallError,
    ModelRequest,
    ModelTimeoutError,
    ProviderLimits,
    Settings,
    TransientModelError,
    UnknownModelError,
)
from llmflow.errors import ProviderDownError, ProviderFault
from llmflow.models.embedded import EmbeddedClient
from llmflow.models.openai_compat import OpenAIClient
from llmflow.testing import ScriptedModel, scripted_gateway


def request(text: str = "hi") -> ModelRequest:
    return ModelRequest(messages=[Message("user", text)])


class Calls:
    budgets = ()

    def __init__(self) -> None:
        self.calls: list[ModelCall] = []

    def on_model_call(self, call: ModelCall) -> None:
        self.calls.append(call)


def test_the_default_model_is_local_never_a_paid_provider() -> None:
    gateway = Gateway(Settings())
    client, model_id = gateway.resolve()
    assert isinstance(client, EmbeddedClient)
    assert model_id == "local"


def test_openai_needs_a_key_and_the_error_names_the_fix() -> None:
    with pytest.raises(MissingCredentialsError) as info:
        Gateway(Settings()).resolve("openai:gpt-4.1-mini")
    assert "OPENAI_API_KEY" in str(info.value)
    assert "--model local" in str(info.value)


def test_model_names_resolve_from_env_dotenv_and_base_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    client, model_id = Gateway(Settings()).resolve("openai:gpt-4.1-mini")
    assert isinstance(client, OpenAIClient)
    assert model_id == "gpt-4.1-mini"
    assert client.provider == "openai"

    monkeypatch.delenv("OPENAI_API_KEY")
    (tmp_path / ".env").write_text(
        "LLMFLOW_MODEL=llama3.2\nOPENAI_BASE_URL=http://127.0.0.1:11434/v1\n"
    )
    settings = Settings()
    assert settings.model == "llama3.2"
    client, model_id = Gateway(settings).resolve()
    assert isinstance(client, OpenAIClient)
    assert model_id == "llama3.2"
    assert client.provider == "127.0.0.1:11434"  # self-hosted: no key needed


def test_an_unknown_model_says_what_names_work() -> None:
    with pytest.raises(UnknownModelError, match=r"'local'.*openai:<model>.*OPENAI_BASE_URL"):
        Gateway(Settings()).resolve("gpt-4.1")


async def test_calls_are_metered_and_reported() -> None:
    model = ScriptedModel(["hello world"])
    observer = Calls()
    response = await scripted_gateway(model).complete(request("a" * 40), observer=observer)
    assert response.text == "hello world"
    (call,) = observer.calls
    assert call.model == "scripted"
    assert call.provider == "scripted"
    assert call.response is response
    assert call.response.usage.input_tokens == 11
    assert call.attempts == 1
    assert call.error is None
    assert call.latency_s >= 0


async def test_transient_errors_are_retried_honouring_retry_after() -> None:
    waits: list[float] = []
    model = ScriptedModel(
        [
            TransientModelError("429", retry_after=0.02),
            TransientModelError("503"),
            "finally",
        ]
    )
    gateway = Gateway(
        Settings(), limits={"scripted": ProviderLimits(max_retries=3)}, backoff=lambda retry: 0.01
    )
    gateway.register("scripted", model)
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    observer = Calls()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(asyncio, "sleep", sleep)
        response = await gateway.complete(request(), model="scripted", observer=observer)
    assert response.text == "finally"
    assert waits == [0.02, 0.01]  # Retry-After first, then the backoff
    assert observer.calls[0].attempts == 3


async def test_retries_give_up_after_the_limit_with_a_clear_error() -> None:
    model = ScriptedModel([TransientModelError("rate limited")] * 5)
    gateway = scripted_gateway(model, limits=ProviderLimits(max_retries=2))
    observer = Calls()
    with pytest.raises(ModelCallError, match="gave up after 3 attempts"):
        await gateway.complete(request(), observer=observer)
    assert len(model.requests) == 3
    assert observer.calls[0].error is not None
    assert observer.calls[0].response is None


async def test_non_transient_errors_are_not_retried() -> None:
    model = ScriptedModel([ModelCallError("HTTP 400: bad request"), "unused"])
    with pytest.raises(ModelCallError, match="400"):
        await scripted_gateway(model).complete(request())
    assert len(model.requests) == 1


async def test_a_call_past_the_timeout_fails_as_a_timeout() -> None:
    model = ScriptedModel(["slow"] * 3, latency_s=1.0)
    gateway = scripted_gateway(model, limits=ProviderLimits(timeout_s=0.05, max_retries=1))
    with pytest.raises(ModelTimeoutError, match=r"no answer within 0\.05s"):
        await gateway.complete(request())
    assert len(model.requests) == 2


async def test_concurrency_per_provider_is_bounded() -> None:
    in_flight = peak = 0

    class Counting(ScriptedModel):
        async def complete(self, model: str, request: ModelRequest) -> Any:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return await super().complete(model, request)

    gateway = scripted_gateway(Counting(lambda r: "ok"), limits=ProviderLimits(max_concurrency=3))
    await asyncio.gather(*(gateway.complete(request()) for _ in range(12)))
    assert peak == 3


async def test_requests_per_minute_are_limited() -> None:
    gateway = scripted_gateway(ScriptedModel(lambda r: "ok"), limits=ProviderLimits(rpm=120))
    loop = asyncio.get_running_loop()
    start = loop.time()
    # aiolimiter lets a full bucket through at once, then 2 requests per second.
    await asyncio.gather(*(gateway.complete(request()) for _ in range(122)))
    assert loop.time() - start >= 0.4


# -- the circuit breaker ----------------------------------------------------------------------


def refused() -> TransientModelError:
    return TransientModelError(
        "cannot connect", fault=ProviderFault(what="cannot connect (refused)", fix="start it")
    )


async def test_provider_faults_in_a_row_open_the_breaker_and_calls_then_fail_fast() -> None:
    model = ScriptedModel(lambda r: refused())
    gateway = scripted_gateway(model, limits=ProviderLimits(max_retries=4))
    observer = Calls()
    with pytest.raises(ProviderDownError) as info:
        await gateway.complete(request(), observer=observer)
    assert len(model.requests) == 3  # breaker_faults: not the 5 attempts retries would make
    error = info.value
    assert error.scope == "run"
    assert (error.endpoint, error.fix) == ("scripted", "start it")
    assert "provider scripted is down: cannot connect (refused), 3 times in a row" in str(error)
    assert "Fix: start it" in str(error)
    assert observer.calls[0].error is not None and "ProviderDownError" in observer.calls[0].error
    # The next calls fail at once: no request, no record.
    for _ in range(3):
        with pytest.raises(ProviderDownError):
            await gateway.complete(request("other"), observer=observer)
    assert len(model.requests) == 3 and len(observer.calls) == 1


async def test_a_share_of_failed_requests_opens_the_breaker() -> None:
    model = ScriptedModel(lambda r: TransientModelError("HTTP 500: broken"))
    limits = ProviderLimits(max_retries=4, breaker_window=10, breaker_share=0.6)
    gateway = scripted_gateway(model, limits=limits)
    with pytest.raises(ModelCallError, match="gave up after 5 attempts"):
        await gateway.complete(request("a"))
    with pytest.raises(ProviderDownError, match=r"6 of its last 6 requests failed \(the last: "):
        await gateway.complete(request("b"))
    assert len(model.requests) == 6


async def test_intermittent_failures_and_rate_limits_leave_the_breaker_closed() -> None:
    replies = iter([TransientModelError("500"), "ok", "ok", "ok", "ok"] * 20)
    model = ScriptedModel(lambda r: next(replies))
    gateway = scripted_gateway(model, limits=ProviderLimits(breaker_window=10, breaker_share=0.3))
    for i in range(20):  # 20 % of the requests fail, the breaker wants 30 %
        assert (await gateway.complete(request(str(i)))).text == "ok"
    limited = ScriptedModel(
        [TransientModelError("429", rate_limited=True, retry_after=0.0)] * 10 + ["ok"]
    )
    gateway = scripted_gateway(
        limited, limits=ProviderLimits(max_retries=10, breaker_window=4, breaker_share=0.5)
    )
    assert (await gateway.complete(request())).text == "ok"  # load, not a provider down


async def test_after_the_cooldown_one_call_probes_and_a_success_closes_the_breaker() -> None:
    replies: list[Any] = [refused(), refused(), refused(), "back", "again"]
    model = ScriptedModel(lambda r: replies.pop(0))
    limits = ProviderLimits(max_retries=4, breaker_cooldown_s=0.05)
    gateway = scripted_gateway(model, limits=limits)
    with pytest.raises(ProviderDownError):
        await gateway.complete(request())
    with pytest.raises(ProviderDownError):
        await gateway.complete(request())  # within the cooldown: no request
    assert len(model.requests) == 3
    await asyncio.sleep(0.06)
    assert (await gateway.complete(request())).text == "back"
    assert (await gateway.complete(request())).text == "again"


async def test_a_key_refused_opens_the_breaker_without_retries() -> None:
    fault = ProviderFault(what="HTTP 401 (the key was refused)", fix="set OPENAI_API_KEY")
    model = ScriptedModel(lambda r: ModelCallError("HTTP 401", fault=fault))
    gateway = scripted_gateway(model)
    for _ in range(2):  # not retried: each call is one request
        with pytest.raises(ModelCallError, match="401"):
            await gateway.complete(request())
    with pytest.raises(ProviderDownError, match=r"key was refused.*Fix: set OPENAI_API_KEY"):
        await gateway.complete(request())
    assert len(model.requests) == 3


# -- only valid answers are cached ----------------------------------------------------------


async def test_only_answers_that_pass_validate_are_cached(tmp_path: Path) -> None:
    from llmflow.models.cache import ResponseCache, cache_key
    from llmflow.store.sqlite import RunStore

    def check(response: Any) -> None:
        if response.text != "good":
            raise ValueError("bad answer")

    store = RunStore(tmp_path / "runs.db")
    answers = ["bad", "good", "unused"]
    model = ScriptedModel(lambda r: answers.pop(0))
    gateway = scripted_gateway(model)
    gateway.cache = ResponseCache(store)
    assert (await gateway.complete(request(), validate=check)).text == "bad"  # returned, not kept
    store.flush()
    assert store.cache_get(cache_key("scripted", request())) is None
    assert (await gateway.complete(request(), validate=check)).text == "good"
    assert (await gateway.complete(request(), validate=check)).text == "good"  # cached
    assert len(model.requests) == 2
    # A cached answer that fails its check (cached by an older version, or under another
    # output type) is dropped and the call made again.
    stale = '{"text": "bad", "tool_calls": [], "usage": {}, "finish_reason": "stop", "model": ""}'
    store.cache_put(cache_key("scripted", request("x")), "scripted", stale)
    store.flush()
    answers[:] = ["good"]
    assert (await gateway.complete(request("x"), validate=check)).text == "good"
    store.flush()
    assert '"good"' in (store.cache_get(cache_key("scripted", request("x"))) or "")


# -- adaptive concurrency (issue 15) --------------------------------------------------------


class _Remote(ScriptedModel):
    provider = "remote"


class _Counting(_Remote):
    """Counts the calls in flight at once; answers after 20 ms (or what `reply` says)."""

    def __init__(self, reply: Any = "ok") -> None:
        super().__init__(self._answer)
        self.reply = reply
        self.now = self.peak = 0

    async def complete(self, model: str, request: ModelRequest) -> Any:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.02)
            return await super().complete(model, request)
        finally:
            self.now -= 1

    def _answer(self, request: ModelRequest) -> Any:
        return self.reply(request) if callable(self.reply) else self.reply


def _remote_gateway(model: ScriptedModel, settings: Settings | None = None) -> Gateway:
    gateway = Gateway((settings or Settings()).model_copy(update={"model": "remote"}),
                      backoff=lambda retry: 0.0)  # fmt: skip
    gateway.register("remote", model)
    return gateway


async def test_a_remote_provider_without_limits_takes_a_fan_out_of_200_at_once() -> None:
    model = _Counting()
    gateway = _remote_gateway(model, Settings(max_concurrency=None))
    await asyncio.gather(*(gateway.complete(request()) for _ in range(200)))
    assert model.peak == 200  # not waves of 16


async def test_an_explicit_concurrency_limit_wins() -> None:
    model = _Counting()
    gateway = _remote_gateway(model, Settings(max_concurrency=7))
    await asyncio.gather(*(gateway.complete(request()) for _ in range(40)))
    assert model.peak == 7
    explicit = Gateway(
        Settings(model="remote"), limits={"remote": ProviderLimits(max_concurrency=3)}
    )
    counted = _Counting()
    explicit.register("remote", counted)
    await asyncio.gather(*(explicit.complete(request()) for _ in range(12)))
    assert counted.peak == 3


async def test_rate_limits_halve_the_adaptive_limit_once_per_round_and_successes_grow_it() -> None:
    limited = {"on": True}

    def reply(r: ModelRequest) -> Any:
        if limited["on"]:
            return TransientModelError("HTTP 429", rate_limited=True, retry_after=0.0)
        return "ok"

    model = _Counting(reply)
    gateway = _remote_gateway(model, Settings(max_concurrency=None, max_retries=0))
    results = await asyncio.gather(
        *(gateway.complete(request()) for _ in range(100)), return_exceptions=True
    )
    assert all(isinstance(r, ModelCallError) for r in results)
    slots = gateway._lane("remote").semaphore
    assert slots.limit == 128  # 100 calls of one round rate-limited: halved once, not 100 times
    await asyncio.gather(  # a second round
        *(gateway.complete(request()) for _ in range(10)), return_exceptions=True
    )
    assert slots.limit == 64
    limited["on"] = False
    await asyncio.gather(*(gateway.complete(request()) for _ in range(200)))
    assert 64 < slots.limit <= 256  # growing back, never past where it started
    assert model.now == 0 and slots.in_flight == 0


async def test_low_rate_limit_headroom_backs_off_like_a_429() -> None:
    from llmflow.models.client import ModelResponse
    from llmflow.models.openai_compat import _headroom

    model = _Counting(lambda r: ModelResponse(text="ok", headroom=0.01))
    gateway = _remote_gateway(model, Settings(max_concurrency=None))
    await asyncio.gather(*(gateway.complete(request()) for _ in range(10)))
    assert gateway._lane("remote").semaphore.limit == 128
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "400",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "10",
    }
    assert _headroom(headers) == pytest.approx(0.01)
    assert _headroom({}) is None


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    model = _Counting()
    gateway = _remote_gateway(model, Settings(max_concurrency=1))
    first = asyncio.ensure_future(gateway.complete(request()))
    second = asyncio.ensure_future(gateway.complete(request()))
    await asyncio.sleep(0)
    second.cancel()
    await first
    await gateway.complete(request())  # would hang if the cancelled waiter kept the slot
    assert gateway._lane("remote").semaphore.in_flight == 0
