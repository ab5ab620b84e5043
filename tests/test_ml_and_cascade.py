"""The ml and rules steps, and the cascade, on real labelled data (data/sms_spam)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

import pytest

from llmflow import ConfigError, InputError, RunContext, RunHooks, run
from llmflow.patterns.cascade import cascade
from llmflow.steps.label import Label
from llmflow.steps.llm import llm
from llmflow.steps.ml import MLStep, read_labelled, rules
from llmflow.testing import ScriptedModel, json_reply, scripted_gateway

DATA = Path(__file__).parent.parent / "data" / "sms_spam" / "dev.jsonl"


def split() -> tuple[list[str], list[str], list[str], list[str]]:
    texts, labels = read_labelled(DATA)
    rows = list(zip(texts, labels, strict=True))
    random.Random(7).shuffle(rows)
    cut = int(len(rows) * 0.8)
    train, test = rows[:cut], rows[cut:]
    return (
        [t for t, _ in train],
        [lab for _, lab in train],
        [t for t, _ in test],
        [lab for _, lab in test],
    )


def test_the_ml_step_learns_sms_spam_and_round_trips_through_skops(tmp_path: Path) -> None:
    train_x, train_y, test_x, test_y = split()
    step = MLStep.train("spam", train_x, train_y)
    predicted = step.predict(test_x)
    accuracy = sum(p.label == y for p, y in zip(predicted, test_y, strict=True)) / len(test_y)
    assert accuracy >= 0.95  # held-out 20 % of dev.jsonl; majority class is 0.87
    assert all(0.5 <= p.confidence <= 1 for p in predicted)

    saved = step.save(tmp_path / "models" / "spam.skops")
    loaded = MLStep.load("spam", saved)
    assert [p.label for p in loaded.predict(test_x[:50])] == [p.label for p in predicted[:50]]


class Evil:
    """A type no skops trust list includes."""


def test_a_model_file_with_untrusted_types_is_refused(tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / "evil.skops"
    sio.dump({"model": Evil()}, path)
    with pytest.raises(ConfigError, match="does not trust"):
        MLStep.load("x", path)


def test_bad_training_files_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "label": "a"}\n{"text": "no label"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl: line 2"):
        read_labelled(bad)
    one = tmp_path / "one.jsonl"
    one.write_text('{"text": "hi", "label": "a"}\n')
    with pytest.raises(InputError, match="at least two labels"):
        read_labelled(one)


async def test_rules_answer_with_certainty_or_abstain() -> None:
    step = rules("rules", [(r"\bwin(ner)?\b.*\bprize\b", "spam"), (r"^ok$", "ham")])
    gw = scripted_gateway(ScriptedModel())
    assert (await run(step, "You are a WINNER of a prize", gateway=gw)).label == "spam"
    abstained = await run(step, "see you later", gateway=gw)
    assert (abstained.label, abstained.confidence) == (None, 0.0)
    with pytest.raises(ConfigError, match="not a valid regex"):
        rules("r", [("(unclosed", "x")])


class Tiers(RunHooks):
    def __init__(self) -> None:
        self.outputs: list[Any] = []

    def on_step_end(self, ctx: RunContext, *, step: Any, output: Any, **kw: Any) -> None:
        if step.kind == "cascade":
            self.outputs.append(output)


async def test_the_cascade_escalates_only_unsure_items_and_records_the_tier() -> None:
    train_x, train_y, test_x, test_y = split()
    ml = MLStep.train("ml", train_x, train_y)
    model = ScriptedModel(
        lambda r: json_reply(
            {"value": "spam" if "free" in (r.messages[-1].content or "").lower() else "ham"}
        )
    )
    flow = cascade(
        "spam-filter",
        (rules("rules", [(r"\bclaim\b.*\bprize\b", "spam")]), 1.0),
        (ml, 0.97),
        (
            llm(
                "llm",
                instructions="ham or spam?",
                output=Literal["ham", "spam"],
            ),
            0.0,
        ),
    )
    hooks = Tiers()
    gw = scripted_gateway(model)
    results = [await run(flow, text, gateway=gw, hooks=[hooks]) for text in test_x[:120]]
    tiers = [r.tier for r in results]
    assert set(tiers) <= {"rules", "ml", "llm"}
    assert tiers.count("ml") > 60  # most items stop at the cheap tier
    assert len(model.requests) == tiers.count("llm")  # the LLM sees only what ML was unsure of
    for r in results:
        if r.tier == "llm":
            assert r.attempts[1].tier == "ml" and (r.attempts[1].confidence or 0) < 0.97
        if r.tier == "ml":
            assert (r.confidence or 0) >= 0.97
    assert hooks.outputs[0].tier == results[0].tier  # recorded per item
    accuracy = sum(r.label == y for r, y in zip(results, test_y[:120], strict=True)) / 120
    assert accuracy >= 0.9
    assert json.loads(results[0].model_dump_json())["attempts"]


def test_calibration_picks_the_lowest_thresholds_that_reach_the_target() -> None:
    from llmflow.analysis.calibration import NEVER, calibrate, simulate

    truth = ["a", "b", "a", "b"]
    cheap = [Label(label="a", confidence=c) for c in (0.9, 0.8, 0.7, 0.6)]  # right on 1 and 3
    oracle = [Label(label=t, confidence=1.0) for t in truth]
    result = calibrate([cheap, oracle], truth, target_accuracy=1.0)
    assert result.thresholds == (0.9, 0.0)  # only the 0.9 answer is safe to accept
    assert result.accuracy == 1.0 and result.shares == (0.25, 0.75)
    looser = calibrate([cheap, oracle], truth, target_accuracy=0.75)
    assert looser.thresholds[0] == 0.7 and looser.shares[0] == 0.75
    assert simulate([cheap, oracle], truth, [NEVER, 0.0]) == (1.0, (0.0, 1.0))


def test_a_calibrated_ml_tier_meets_the_target_on_held_out_data() -> None:
    from llmflow.analysis.calibration import calibrate, simulate

    train_x, train_y, test_x, test_y = split()
    ml = MLStep.train("ml", train_x[:1000], train_y[:1000])
    valid_x, valid_y = train_x[1000:], train_y[1000:]
    oracle = [Label(label=y, confidence=1.0) for y in valid_y]  # a perfect (expensive) last tier
    result = calibrate([ml.predict(valid_x), oracle], valid_y, target_accuracy=0.99)
    assert result.accuracy >= 0.99
    assert result.shares[0] > 0.7  # the cheap tier still answers most items
    held_out = simulate(
        [ml.predict(test_x), [Label(label=y, confidence=1.0) for y in test_y]],
        test_y,
        result.thresholds,
    )
    assert held_out[0] >= 0.98


async def test_thresholds_calibrated_for_the_llm_tiers_model_apply_only_to_it() -> None:
    from llmflow import Gateway, Settings, classify
    from llmflow.models.client import ModelResponse

    train_x, train_y, test_x, _ = split()
    ml = MLStep.train("ml", train_x, train_y)
    unsure = next(
        t for t, said in zip(test_x, ml.predict(test_x), strict=True) if said.confidence < 0.9
    )
    model = ScriptedModel(lambda r: ModelResponse(text="spam", choice_probs={"spam": 1.0}))
    flow = cascade("spam", (ml, 0.9), (classify("llm", ["ham", "spam"]), 0.0))
    tuned_for_scripted = flow.with_thresholds([0.9, 0.0])
    tuned_for_scripted.by_model = {"scripted": [0.0, 0.0]}  # calibrated: never escalate
    gw = scripted_gateway(model)
    assert (await run(flow, unsure, gateway=gw)).tier == "llm"
    assert (await run(tuned_for_scripted, unsure, gateway=gw)).tier == "ml"
    other = Gateway(Settings(model="other"))
    other.register("other", model)
    assert (await run(tuned_for_scripted, unsure, gateway=other)).tier == "llm"


def test_email_triage_uses_the_thresholds_measured_for_the_embedded_model(tmp_path: Path) -> None:
    from llmflow.apps.email_triage.classifier import CALIBRATED, cascades, label_sets
    from llmflow.apps.email_triage.workflow import Category, Priority

    measured = json.loads(CALIBRATED.read_text())["local"]
    category, priority = cascades(tmp_path, label_sets(Category, Priority))
    assert category.by_model["local"] == [measured["category"][t] for t in ("rules", "ml", "llm")]
    assert priority.by_model["local"] == [measured["priority"][t] for t in ("ml", "llm")]
    assert [t for _, t in category.tiers] == [1.0, 0.6, 0.0]  # other models: the defaults


def test_character_ngrams_round_trip_through_skops_without_new_trusted_types(
    tmp_path: Path,
) -> None:
    texts, labels = read_labelled(Path(__file__).parent.parent / "data" / "banking77" / "dev.jsonl")
    step = MLStep.train("intent", texts[:600], labels[:600], char_ngrams=True)
    saved = step.save(tmp_path / "intent.skops")
    loaded = MLStep.load("intent", saved)  # a FeatureUnion is on skops' own trusted list
    assert [p.label for p in loaded.predict(texts[600:650])] == [
        p.label for p in step.predict(texts[600:650])
    ]
