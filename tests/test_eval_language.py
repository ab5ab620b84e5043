"""`llmflow eval --step <llm step>`: a language step scored on gold data by code (per-field
accuracy with dates, amounts and ids normalised, grounded rate, output checks), on the
scripted model and the example workflow examples/invoices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmflow.analysis.language_eval import Answer, GoldRow, same, score
from llmflow.cli import main
from llmflow.models.client import ModelRequest
from llmflow.models.gateway import Gateway
from llmflow.testing import ScriptedModel

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "invoices"
GOLD = EXAMPLE / "gold.jsonl"


@pytest.mark.parametrize(
    ("gold", "answer", "expected"),
    [
        ("2026-12-04", "4 December 2026", True),
        ("2026-12-04", "4. Dezember", True),  # no year: the day is right
        ("2026-12-04", "2026-12-05", False),
        ("1250 EUR", "1 250,00 €", True),
        ("1250 EUR", "EUR 1,250.00", True),
        ("1250 EUR", "120 EUR", False),
        ("1250 EUR", "1250 USD", False),
        (1250, "1,250", True),
        ("INV-2041", "inv-2041", True),
        ("INV-2041", "INV-2014", False),
        (["NW-10482", "NW-10483"], ["NW-10483", "NW-10482"], True),
        (["NW-10482"], ["NW-10482", "9999"], False),  # an invented extra id is wrong
        (None, None, True),
        (None, "2027-01-05", False),  # the gold says nothing is stated: nothing may be answered
        (True, True, True),
        ("de", "DE", True),
    ],
)
def test_answers_are_compared_by_meaning(gold: Any, answer: Any, expected: bool) -> None:
    assert same(gold, answer) is expected


def body(request: ModelRequest) -> str:
    return request.messages[-1].content or ""


def answer(request: ModelRequest) -> str:
    """Row 1 right in other formats; row 2 an invented amount; row 3 nothing, rightly."""
    text = body(request)
    if request.output_schema is None:  # the summary
        if "INV-2041" in text:
            return "Ann Weber reminds us that invoice INV-2041 (1,250 EUR) is due on 4 December."
        if "2026-0317" in text:
            return "Lee Chen asks us to pay invoice 2026-0317, 98.90 USD, by [date]."
        return "The subscription renews next month."
    if "INV-2041" in text:
        extracted = {"invoice": "INV-2041", "amount": "EUR 1,250.00", "due": "4 December 2026"}
    elif "2026-0317" in text:
        extracted = {"invoice": "2026-0317", "amount": "98.90 USD", "due": "2027-01-15"}
    else:
        extracted = {"invoice": None, "amount": None, "due": None}
    return json.dumps(extracted)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedModel:
    model = ScriptedModel(answer)
    monkeypatch.setattr(Gateway, "_make_local", lambda self: model)
    return model


def evaluate(step: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["eval", str(EXAMPLE), "--step", step, "--data", str(GOLD), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


def test_an_extraction_is_scored_per_field_and_its_refusals_count(
    scripted: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    report = evaluate("extract", capsys)
    assert report["workflow"] == "invoices" and report["rows"] == 3
    # Row 2's answer stated 98.90, which the mail does not: the step refused it (null), so
    # every field of row 2 is wrong; row 1 is right in other formats; row 3 rightly empty.
    assert {k: (v["correct"], v["rows"]) for k, v in report["fields"].items()} == {
        "invoice": (2, 3),
        "amount": (2, 3),
        "due": (2, 3),
    }
    assert (report["grounded"], report["answered"]) == (1, 2)  # row 3 stated nothing
    row2 = report["results"][1]
    assert row2["output"] is None and row2["ungrounded"] == ["98.90"]
    assert row2["problems"] == ["refused as ungrounded: 98.90"]
    assert report["results"][0]["wrong"] == {}
    assert report["results"][2]["problems"] == []  # nothing to extract: empty is right
    assert report["checks_rate"] == pytest.approx(2 / 3, abs=1e-3)


def test_free_text_gets_a_grounded_rate_and_output_checks(
    scripted: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    report = evaluate("summary", capsys)
    # The gold fields are the extraction's: a text step is checked by grounding only.
    assert report["fields"] == {}
    assert (report["grounded"], report["answered"]) == (2, 3)
    row2 = report["results"][1]
    assert row2["ungrounded"] == ["98.90"] and row2["error"].startswith("step 'invoices/summary'")
    assert report["checks_rate"] == pytest.approx(2 / 3, abs=1e-3)


def test_placeholders_and_empty_answers_fail_the_output_checks() -> None:
    rows = [GoldRow({"body": "Hi, where is my parcel?"}, None, "Hi, where is my parcel?")] * 3
    answers = [Answer("We are looking into your parcel."), Answer("Best, [Your Name]"),
               Answer("")]  # fmt: skip
    result = score("reply", rows, answers, text=True)
    assert [r.problems for r in result.results] == [[], ["placeholder [Your Name]"], ["empty"]]
    assert (result.checks_passed, result.grounded, result.answered) == (1, 1, 2)


def test_the_table_names_each_measure(
    scripted: ScriptedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(EXAMPLE), "--step", "extract", "--data", str(GOLD)]) == 0
    captured = capsys.readouterr()
    for measure in ("invoice accuracy", "amount accuracy", "due accuracy", "grounded"):
        assert measure in captured.out
    assert "row 2: refused as ungrounded: 98.90" in captured.err


@pytest.mark.parametrize(
    ("rows", "args", "expected"),
    [
        ('{"text": "a", "label": "b"}\n', [], 'gold.jsonl:1: a gold row is {"input": ...'),
        ("{not json\n", [], "gold.jsonl:1: not JSON"),
        ("", [], "has no gold rows"),
        ('{"input": {}, "gold": {}}\n', ["--plot", "p.png"], "--variants and --plot compare"),
    ],
)
def test_bad_gold_data_exits_2_naming_the_line(
    tmp_path: Path,
    rows: str,
    args: list[str],
    expected: str,
    scripted: ScriptedModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text(rows)
    assert main(["eval", str(EXAMPLE), "--step", "extract", "--data", str(gold), *args]) == 2
    assert expected in capsys.readouterr().err
    assert scripted.requests == []
