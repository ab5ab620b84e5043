"""The benchmarks' simulated strong LLM: right 90 % of the time, stable, priced as hosted."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from llmflow.analysis.tuning import answers
from llmflow.errors import StepError
from llmflow.patterns.cascade import Cascade
from llmflow.runtime.runner import run
from llmflow.steps.classify import classify
from llmflow.steps.ml import read_labelled

BENCH = Path(__file__).parent.parent / "bench"
DATA = Path(__file__).parent.parent / "data" / "banking77" / "dev.jsonl"


def simulated_llm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("simulated_llm", BENCH / "simulated_llm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulated_llm"] = module
    spec.loader.exec_module(module)
    return module


async def test_it_answers_gold_nine_times_in_ten_the_same_way_each_time_and_costs_money() -> None:
    sim = simulated_llm()
    texts, labels = read_labelled(DATA)
    texts, labels = texts[:600], labels[:600]
    llm = sim.SimulatedLLM(dict(zip(texts, labels, strict=True)), latency_s=0.01)
    step = classify("llm", sorted(set(labels)))
    tier = Cascade("tier", [(step, 0.0)])
    gateway = sim.simulated_gateway(llm)
    halves = await asyncio.gather(*(answers(tier, texts[i::2], gateway) for i in range(2)))
    said = {t: a.label for h, part in zip(halves, (texts[0::2], texts[1::2]), strict=True)
            for t, a in zip(part, h.answers[0], strict=True)}  # fmt: skip

    right = sum(said[t] == label for t, label in zip(texts, labels, strict=True)) / len(texts)
    assert 0.86 <= right <= 0.94  # 0.9 ± ~3 standard deviations over 600 draws
    wrong = [t for t, label in zip(texts, labels, strict=True) if said[t] != label]
    assert all(said[t] in step.labels for t in wrong)  # a real (wrong) label, never junk
    assert all(llm.answer(t, step.labels) == said[t] for t in texts)  # stable per text
    cost = sum(sum(h.cost, start=0) for h in halves)
    assert cost > 0  # priced like gpt-4.1-mini, not as a free self-hosted model
    assert len(llm.requests) == len(texts)
    assert min(s for h in halves for s in h.seconds[0]) >= 0.01  # the delay is paid


async def test_it_refuses_a_text_it_has_no_gold_label_for() -> None:
    sim = simulated_llm()
    llm = sim.SimulatedLLM({"known": "a"}, latency_s=0)
    gateway = sim.simulated_gateway(llm)
    with pytest.raises(StepError, match=r"step 'llm': KeyError: .* no gold label"):
        await run(classify("llm", ["a", "b"]), "unknown", gateway=gateway)
