"""Calibrate, distill, eval and correct: from Python and from the CLI, on real labelled data."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from llmflow import ModelRequest, ModelResponse, RunStore, Settings, Workflow, run_batch
from llmflow.analysis.calibration import NEVER
from llmflow.analysis.tuning import distill, history, tuned
from llmflow.apps.email_triage import SAMPLE_INBOX
from llmflow.cli import main
from llmflow.patterns.cascade import cascade
from llmflow.runtime.runner import Item
from llmflow.steps.classify import classify
from llmflow.steps.ml import MLStep, read_labelled
from llmflow.testing import ScriptedModel, scripted_gateway

from .fake_openai_server import serve

SMS = Path(__file__).parent.parent / "data" / "sms_spam" / "dev.jsonl"
CATEGORY = SAMPLE_INBOX / "eval-category.jsonl"


def sms_rows() -> list[tuple[str, str]]:
    texts, labels = read_labelled(SMS)
    rows = list(zip(texts, labels, strict=True))
    random.Random(3).shuffle(rows)
    return rows


def sms_workflow() -> Workflow:
    """An SMS spam filter whose ml tier starts untrusted (threshold never): the LLM decides
    everything until the ml tier is distilled from its decisions."""
    seed = sms_rows()[:40]
    ml = MLStep.train("ml", [t for t, _ in seed], [label for _, label in seed])
    flow = cascade("spam", (ml, NEVER), (classify("llm", ["ham", "spam"]), 0.0))
    return Workflow(name="sms", step=tuned(flow, Settings().home, "sms"))


def teacher(truth: dict[str, str]) -> ScriptedModel:
    """A strong LLM: the gold label, sure of it."""

    def reply(request: ModelRequest) -> ModelResponse:
        label = truth[request.messages[-1].content or ""]
        return ModelResponse(text=label, choice_probs={label: 0.99})

    return ScriptedModel(reply)


async def test_distillation_moves_traffic_to_the_ml_tier_and_corrections_win() -> None:
    rows = sms_rows()[40:640]
    truth = dict(rows)
    model = teacher(truth)
    store = RunStore(Settings().db_path)
    workflow = sms_workflow()
    items = [Item(key=f"sms-{i}", value=text) for i, (text, _) in enumerate(rows)]
    batch = await run_batch(workflow, items, gateway=scripted_gateway(model), store=store)
    assert batch.status == "ok" and len(model.requests) == len(rows)  # all went to the LLM

    # A person corrects one decision: it takes precedence over the LLM's.
    first = store.find_item(batch.run_id, "sms-0")
    flipped = "ham" if rows[0][1] == "spam" else "spam"
    store.correct(first["id"], "spam", flipped, note="test")
    texts, labels, corrections = history(store, "spam", "sms")
    assert corrections == 1 and labels[texts.index(rows[0][0])] == flipped
    assert len(texts) == len(set(t for t, _ in rows))

    result = distill(workflow.step, store, workflow="sms", home=Settings().home)  # type: ignore[arg-type]
    assert result.examples == len(texts) and result.corrections == 1
    assert result.share >= 0.5 and result.agreement >= 0.97 and result.filter_agreement >= 0.97
    assert result.version is not None and (result.version / "model.skops").is_file()

    # The next build uses the distilled tier: most new items never reach the LLM.
    fresh = sms_rows()[640:840]
    model = teacher(dict(fresh))
    rebuilt = sms_workflow()
    later = [Item(key=f"new-{i}", value=text) for i, (text, _) in enumerate(fresh)]
    batch = await run_batch(rebuilt, later, gateway=scripted_gateway(model), store=store)
    assert len(model.requests) <= 0.5 * len(fresh)
    accuracy = sum(
        r.output.label == label for r, (_, label) in zip(batch.results, fresh, strict=True)
    )
    assert accuracy / len(fresh) >= 0.95
    store.close()


async def test_a_correction_names_a_cascade_the_item_went_through_and_one_of_its_labels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A typo in --step or --label would be stored and learned (or silently never used):
    refused, with the step or label meant; a second correction says what it replaces."""
    rows = sms_rows()[40:60]
    store = RunStore(Settings().db_path)
    items = [Item(key=f"sms-{i}", value=text) for i, (text, _) in enumerate(rows)]
    batch = await run_batch(sms_workflow(), items, gateway=scripted_gateway(teacher(dict(rows))),
                            store=store)  # fmt: skip
    store.close()
    run = ["correct", batch.run_id, "sms-0"]
    for args, expected in [
        (["--step", "spma", "--label", "ham"], "no decision of a cascade 'spma' to correct: "
         "give --step spam"),
        (["--step", "llm", "--label", "ham"], "give --step spam"),
        (["--step", "spam", "--label", "Ham"], "has not answered 'Ham' (its labels so far: "
         "ham, spam): did you mean 'ham'?"),
        (["--step", "spam", "--label", "eggs"], "pass --new-label"),
        (["--step", "spam", "--label", " "], "--label is empty"),
    ]:  # fmt: skip
        assert main([*run, *args]) == 2
        assert expected in " ".join(capsys.readouterr().err.split())
    store = RunStore(Settings().db_path)
    assert history(store, "spam", "sms")[2] == 0  # nothing recorded
    store.close()

    assert main([*run, "--step", "spam", "--label", "ham"]) == 0
    assert main([*run, "--step", "spam", "--label", "spam"]) == 0
    assert "it replaces the correction 'ham'" in capsys.readouterr().out
    assert main([*run, "--step", "spam", "--label", "eggs", "--new-label"]) == 0


def test_live_checks_say_when_the_cascade_audits_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["eval", "tests.test_tune:sms_workflow", "--live"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "cascade 'spam' audits nothing (audit: 0)" in said and "set `audit:`" in said


async def test_distill_needs_enough_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["distill", "tests.test_tune:sms_workflow", "spam"]) == 2
    assert "needs at least 20 recorded LLM decisions" in capsys.readouterr().err


def answer_from_keywords(body: dict[str, Any]) -> str:
    """A weak LLM over OpenAI's API: a label from keywords."""
    text = body["messages"][-1]["content"].lower()
    for word, label in (("invoice", "billing"), ("order", "support"), ("quote", "sales")):
        if word in text:
            return label
    return "internal"


def test_eval_and_calibrate_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "plot.png"
    with serve(answer_from_keywords) as (url, received):
        args = ["--model", "weak", "--base-url", url, "--json"]
        code = main(["eval", "email-triage", "--step", "category", "--data", str(CATEGORY),
                     "--plot", str(png), *args])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        report = json.loads(capsys.readouterr().out)
        assert len(received) == 41  # the LLM tier answered every row once, for all variants

        code = main(["calibrate", "email-triage", "category", "--data", str(CATEGORY),
                     "--target-accuracy", "0.9", *args])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        calibration = json.loads(capsys.readouterr().out)
        assert len(received) == 41  # answered from the response cache the second time

    variants = {v["name"]: v for v in report["variants"]}
    assert set(variants) == {"rules-only", "ml-only", "llm-only", "cascade"}
    assert variants["ml-only"]["accuracy"] >= 0.85  # trained on the example emails only
    assert variants["llm-only"]["shares"] == {"rules": 0, "ml": 0, "llm": 1.0}
    assert sum(variants["cascade"]["shares"].values()) == pytest.approx(1.0)
    assert all(0 <= v["macro_f1"] <= 1 for v in variants.values())
    assert png.read_bytes().startswith(b"\x89PNG")

    tiers = {t["tier"]: t for t in calibration["tiers"]}
    assert tiers["rules"]["threshold"] == 1.0  # matched nothing on validation: kept
    assert 0 < tiers["ml"]["threshold"] <= 1 and tiers["llm"]["threshold"] == 0
    assert calibration["validation_accuracy"] >= 0.9
    meta = json.loads((Path(calibration["version"]) / "meta.json").read_text())
    assert meta["thresholds_by_model"]["weak"]["ml"] == tiers["ml"]["threshold"]
    assert meta["thresholds"]["ml"] == 0.6  # other models keep the default (category)
    assert Path(calibration["version"]).name == "v0002"  # v0001: trained at first build


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["calibrate", "email-triage", "summary", "--data", str(CATEGORY)],
         "not a cascade: name a cascade step (cascades here: 'category', 'priority')"),
        (["calibrate", "email-triage", "nope", "--data", str(CATEGORY)], "has no step 'nope'"),
        (["eval", "email-triage", "--data", str(CATEGORY)], "name the cascade"),
        (["eval", "email-triage", "--step", "category", "--data", "no.jsonl"], "no.jsonl"),
        (["eval", "email-triage", "--step", "category", "--data", str(CATEGORY),
          "--variants", "gpt-only"], "unknown variant(s) gpt-only"),
        (["correct", "abc", "x.eml", "--step", "category", "--label", "spam"], "no run with id"),
    ],
)  # fmt: skip
def test_bad_tuning_input_exits_2_naming_the_problem(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", 'has no rows: expected one {"text": ..., "label": ...} per line'),
        (b'{"text": "a", "label": "ham"}\n{"text": "b\xff", "label": "spam"}\n',
         "line 2: not UTF-8 (byte 0xff at column 12)"),
        (b'{"text": "a", "label": "ham"}\n\n{"text": "b"}\n', 'line 3: no "label"'),
        (b'{"text": "a", "label": "ham"}\n{"text": "b", "label": null}\n',
         'line 2: "label" is null: expected a string'),
        (b'{"text": "a", "label": "ham"}\n{"text": "b", "label": \n',
         "line 2, column 24: not JSON"),
        # a label no tier answers would count as every tier's mistake: refused before any call
        (b'{"text": "a", "label": "ham"}\n{"text": "b", "label": "Spam"}\n',
         "line 2: label 'Spam' is not among the labels (ham, spam): did you mean 'spam'?"),
    ],
)  # fmt: skip
def test_bad_labelled_data_names_the_file_and_line(
    tmp_path: Path, content: bytes, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "labelled.jsonl"
    data.write_bytes(content)
    assert main(["calibrate", "tests.test_tune:sms_workflow", "spam", "--data", str(data)]) == 2
    assert f"{data}: {expected}" in capsys.readouterr().err


async def test_a_distilled_tier_learns_from_the_text_it_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ml tier that reads more than its input (the triage's priority tier adds the cues code
    finds) is trained on what it reads, or it would meet words at run time it never saw."""
    import llmflow.analysis.distill as distilling

    def marked(text: Any) -> str:
        return f"{text} zzcue"

    seed = sms_rows()[:40]
    ml = MLStep.train("ml", [marked(t) for t, _ in seed], [label for _, label in seed],
                      text=marked)  # fmt: skip
    flow = cascade("spam", (ml, NEVER), (classify("llm", ["ham", "spam"]), 0.0))
    rows = sms_rows()[40:140]
    store = RunStore(Settings().db_path)
    items = [Item(key=f"sms-{i}", value=text) for i, (text, _) in enumerate(rows)]
    model = teacher(dict(rows))
    await run_batch(Workflow(name="marked", step=flow), items, gateway=scripted_gateway(model),
                    store=store)  # fmt: skip
    saved: dict[str, Any] = {}
    monkeypatch.setattr(distilling, "save_version", lambda *a, **kw: saved.update(kw))
    distill(flow, store, workflow="marked", home=Settings().home)
    trained_on = saved["ml"].training[0]
    assert len(trained_on) == len(rows) and all(t.endswith(" zzcue") for t in trained_on)
    store.close()
