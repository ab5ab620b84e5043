"""Prices, budgets (with a property test under concurrency), and the response cache."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmflow import (
    Gateway,
    Item,
    Message,
    ModelCall,
    ModelRequest,
    RunStore,
    Sampling,
    Settings,
    Usage,
    Workflow,
    chain,
    llm,
    run_batch,
)
from llmflow.errors import BudgetExceededError
from llmflow.models.budget import Budget
from llmflow.models.cache import ResponseCache
from llmflow.models.pricing import Pricing
from llmflow.testing import ScriptedModel, scripted_gateway


class Scope:
    def __init__(self, *budgets: Budget) -> None:
        self.budgets = budgets
        self.calls: list[ModelCall] = []

    def on_model_call(self, call: ModelCall) -> None:
        self.calls.append(call)


def request(text: str = "x" * 40, max_tokens: int = 20, temperature: float = 0.0) -> ModelRequest:
    return ModelRequest(
        messages=[Message("user", text)],
        sampling=Sampling(max_tokens=max_tokens, temperature=temperature),
    )


def priced_gateway(model: ScriptedModel) -> Gateway:
    """A scripted model priced as OpenAI's gpt-4.1-mini ($0.40 / $1.60 per million tokens)."""
    model.provider = "openai"
    gateway = Gateway(Settings(), backoff=lambda retry: 0.0)
    gateway.register("openai", model)
    return gateway


def test_prices_hosted_local_and_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    pricing = Pricing(Settings())
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert pricing.cost("openai", "gpt-4.1-mini", usage, 1.0) == Decimal("2.0")
    assert pricing.cost("openai", "no-such-model", usage, 1.0) is None  # unknown, not $0
    assert pricing.cost("local", "local", usage, 1.0) == 0
    monkeypatch.setenv("LLMFLOW_LOCAL_PRICE_PER_MTOK", "0.05")
    monkeypatch.setenv("LLMFLOW_LOCAL_PRICE_PER_HOUR", "3.6")
    assert Pricing(Settings()).cost("local", "local", usage, 10.0) == Decimal("0.11")


async def test_calls_carry_their_cost() -> None:
    scope = Scope()
    gateway = priced_gateway(ScriptedModel(["y" * 36]))
    await gateway.complete(request("x" * 396), model="openai:gpt-4.1-mini", observer=scope)
    (call,) = scope.calls
    # 100 input tokens at $0.40/M + 10 output tokens at $1.60/M
    assert call.cost == Decimal("0.000056")


async def test_a_money_budget_stops_before_the_call_and_names_the_flag() -> None:
    budget = Budget(max_cost=Decimal("0.0001"))
    model = ScriptedModel(lambda r: "ok")
    gateway = priced_gateway(model)
    scope = Scope(budget)

    async def spend() -> None:
        for _ in range(100):
            await gateway.complete(
                request(max_tokens=200), model="openai:gpt-4.1-mini", observer=scope
            )

    with pytest.raises(BudgetExceededError, match="--max-cost") as info:
        await spend()
    assert info.value.budget == "cost"
    assert budget.spent_cost <= budget.max_cost
    assert len(model.requests) == len(scope.calls) < 100


async def test_an_unknown_price_under_a_money_budget_is_refused_clearly() -> None:
    gateway = priced_gateway(ScriptedModel(["ok"]))
    with pytest.raises(BudgetExceededError, match="price is unknown"):
        await gateway.complete(
            request(), model="openai:mystery-model", observer=Scope(Budget(max_cost=Decimal(1)))
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.integers(min_value=1, max_value=3000),
    calls=st.lists(
        st.tuples(st.integers(0, 400), st.integers(1, 200), st.integers(0, 400)),
        min_size=1,
        max_size=30,
    ),
    concurrency=st.integers(1, 30),
)
def test_a_token_budget_is_never_exceeded_under_concurrency(
    limit: int, calls: list[tuple[int, int, int]], concurrency: int
) -> None:
    """Each call: (prompt chars, max_tokens, reply chars). A provider never generates more
    than max_tokens, so replies are cut to it; the prompt is counted as the gateway counts
    it. Then reserving the worst case keeps every concurrent mix within the budget."""

    async def scenario() -> tuple[int, int]:
        budget = Budget(max_tokens=limit)
        replies = {
            f"p{i}-" + "x" * c[0]: "y" * min(c[2], 4 * c[1] - 1) for i, c in enumerate(calls)
        }
        model = ScriptedModel(lambda r: replies[r.messages[0].content or ""], latency_s=0.001)
        gateway = scripted_gateway(model)
        semaphore = asyncio.Semaphore(concurrency)
        scope = Scope(budget)

        async def one(i: int, prompt: int, max_tokens: int) -> None:
            async with semaphore:
                with contextlib.suppress(BudgetExceededError):
                    await gateway.complete(
                        request(f"p{i}-" + "x" * prompt, max_tokens), observer=scope
                    )

        await asyncio.gather(*(one(i, p, m) for i, (p, m, _) in enumerate(calls)))
        assert all(c.response.usage.output_tokens <= c.request.sampling.max_tokens
                   for c in scope.calls if c.response)  # fmt: skip
        return budget.spent_tokens, len(scope.calls)

    spent, _made = asyncio.run(scenario())
    assert spent <= limit


async def test_the_request_budget_counts_calls() -> None:
    scope = Scope(Budget(max_requests=2))
    gateway = scripted_gateway(ScriptedModel(lambda r: "ok"))
    await gateway.complete(request(), observer=scope)
    await gateway.complete(request(), observer=scope)
    with pytest.raises(BudgetExceededError, match=r"2 requests.*--max-requests"):
        await gateway.complete(request(), observer=scope)


def flow() -> Workflow:
    return Workflow(name="echo", step=chain("echo", llm("a", instructions="i", max_tokens=50)))


async def test_a_batch_stops_at_its_budget_and_keeps_what_finished(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    items = [Item(str(i), f"input {i}") for i in range(10)]
    batch = await run_batch(
        flow(),
        items,
        gateway=scripted_gateway(ScriptedModel(lambda r: "ok")),
        store=store,
        concurrency=1,
        budget=Budget(max_tokens=70, flags={"tokens": "--max-tokens", "cost": "", "requests": ""}),
    )
    assert batch.status == "stopped"
    assert "--max-tokens" in (batch.error or "")
    done = [r for r in batch.results if r.ok]
    assert 0 < len(done) < 10
    run = store.find_run(batch.run_id)
    assert run["status"] == "stopped" and "--max-tokens" in run["error"]


async def test_an_item_budget_fails_only_that_item() -> None:
    model = ScriptedModel(lambda r: "ok")
    items = [Item("short", "hi"), Item("long", "x" * 2000)]
    batch = await run_batch(
        flow(),
        items,
        gateway=scripted_gateway(model),
        item_budget=lambda: Budget(max_tokens=100, scope="item"),
    )
    assert batch.status == "partial"
    assert [r.key for r in batch.failed] == ["long"]


async def test_a_second_run_of_a_batch_is_served_from_the_cache(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    model = ScriptedModel(lambda r: "ok")
    gateway = scripted_gateway(model)
    gateway.cache = ResponseCache(store)
    items = [Item(str(i), f"input {i}") for i in range(5)]
    first = await run_batch(flow(), items, gateway=gateway, store=store)
    assert len(model.requests) == 5
    second = await run_batch(flow(), items, gateway=gateway, store=store)
    assert len(model.requests) == 5  # zero model calls the second time
    calls = store.rows("model_calls", second.run_id)
    assert len(calls) == 5 and all(c["cached"] == 1 and c["cost"] == "0" for c in calls)
    assert [r.output for r in second.results] == [r.output for r in first.results]


async def test_sampled_calls_are_not_cached(tmp_path: Path) -> None:
    model = ScriptedModel(lambda r: "ok")
    gateway = scripted_gateway(model)
    gateway.cache = ResponseCache(RunStore(tmp_path / "runs.db"))
    for _ in range(2):
        await gateway.complete(request(temperature=0.7), observer=Scope())
    assert len(model.requests) == 2
    for _ in range(2):
        await gateway.complete(request(temperature=0.0), observer=Scope())
    assert len(model.requests) == 3
    await gateway.complete(request(temperature=0.0), observer=Scope(), use_cache=False)
    assert len(model.requests) == 4
