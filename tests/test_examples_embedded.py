"""Every example end to end on the real embedded model (SmolLM2-135M, in-process).

These assert structure only (types, shapes, non-empty text), never judgement: a 135M model
routes, votes and reviews poorly, but every output it gives is valid and typed. About a
minute and a half on two cores.
"""

from __future__ import annotations

import pytest

from llmflow import Evaluation, Failed, RefineResult, VoteResult

from .test_examples import load

pytestmark = pytest.mark.embedded


async def test_chain_example() -> None:
    example = load("chain")
    product = await example.main(None)
    assert isinstance(product, example.Product)
    assert product.blurb and product.tagline


async def test_route_example() -> None:
    example = load("route")
    handled = await example.main(None)
    assert len(handled) == len(example.MESSAGES)
    for branch, answer in handled:
        assert branch in {"billing", "technical", "general"}
        assert isinstance(answer, str) and answer.strip()


async def test_parallel_example() -> None:
    example = load("parallel")
    review = await example.main(None)
    assert isinstance(review, example.Review)
    assert not any(isinstance(value, Failed) for _, value in review)
    assert review.tone in {"friendly", "neutral", "pushy"}
    assert len(review.claims.claims) <= 3
    assert all(isinstance(claim, str) for claim in review.claims.claims)
    assert review.length.words == len(example.DESCRIPTION.split())


async def test_vote_example() -> None:
    example = load("vote")
    results = await example.main(None)
    assert len(results) == len(example.DRAFTS)
    for result in results:
        assert isinstance(result, VoteResult)
        assert isinstance(result.value, bool)
        assert len(result.votes) == example.RUNS
        assert set(result.votes) <= {"safe", "unsafe"}
        assert result.agreement == result.votes.count("unsafe") / example.RUNS


async def test_orchestrate_example() -> None:
    example = load("orchestrate")
    report = await example.main(None)
    assert isinstance(report, str)
    assert report.startswith(f"# {example.REQUEST.topic}\n")
    sections = report.split("\n## ")[1:]
    assert 1 <= len(sections) <= 4
    assert all(section.strip() for section in sections)


async def test_refine_example() -> None:
    example = load("refine")
    result = await example.main(None)
    assert isinstance(result, RefineResult)
    assert 1 <= len(result.rounds) <= 3
    assert result.stopped == ("passed" if result.passed else "max_rounds")
    assert result.passed or len(result.rounds) == 3
    assert all(isinstance(r.evaluation, Evaluation) for r in result.rounds)
    assert isinstance(result.output, str) and result.output.strip()
    scores = [r.evaluation.score for r in result.rounds]
    assert result.score == (scores[-1] if result.passed else max(scores))


async def test_agent_example() -> None:
    example = load("agent")
    reply, calls = await example.main(None)
    assert isinstance(reply, example.Reply)
    assert reply.message.strip()
    assert all(isinstance(call, str) for call in calls)
    assert len(calls) <= 8  # the loop is bounded (tools are withheld after a few rounds)
    assert set(example.REFUNDS) <= set(example.ORDERS)


async def test_cascade_example() -> None:
    example = load("cascade")
    results = await example.main(None, 6)
    assert len(results) == 6
    for _, _, said in results:
        assert said.label in {"ham", "spam"} and said.tier in {"rules", "ml", "llm"}
        assert said.confidence is not None and 0 <= said.confidence <= 1
