"""The CLI as a user runs it: exit codes, errors that name the fix, runs list/show."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llmflow.cli import main

from .fake_openai_server import serve

SOME = ["001-invoice-overdue.eml", "034-phishing-verify-account.eml", "099-malformed.eml"]


@pytest.fixture
def small_inbox(tmp_path: Path, inbox: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in SOME:
        shutil.copy(inbox / name, folder / name)
    return folder


def answer(body: dict[str, Any]) -> str:
    name = (body.get("response_format") or {}).get("json_schema", {}).get("name")
    spam = "verify" in body["messages"][-1]["content"].lower()
    if body.get("logprobs"):  # a classification cascade's LLM tier: category or priority
        category = "billing, support, sales, internal, spam" in body["messages"][0]["content"]
        return ("spam" if spam else "billing") if category else "high"
    if name == "extract":
        return json.dumps(
            {
                "request": "Pay the invoice.",
                "deadline": "Friday 4 December 2026",
                "order_numbers": [],
                "invoice_numbers": ["INV-2026-0193"],
                "needs_reply": True,
            }
        )
    if "Our reply:" in body["messages"][-1]["content"]:  # signed by us, no placeholders
        return "Thank you, we have your message and will answer soon.\n\nKind regards,\n" + (
            "Northwind Outfitters"
        )
    return "A short text."


def test_run_on_an_openai_compatible_server_then_inspect_the_run(
    small_inbox: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(answer) as (url, received):
        code = main(
            [
                "run",
                "email-triage",
                str(small_inbox),
                "--base-url",
                url,
                "--model",
                "qwen3",
                "--out",
                str(tmp_path / "out"),
                "--json",
            ]
        )
    assert code == 3  # finished, one item (the malformed mail) failed
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "partial"
    by_key = {item["key"]: item for item in result["items"]}
    assert by_key["099-malformed.eml"]["ok"] is False
    assert "not an email" in by_key["099-malformed.eml"]["error"]
    invoice = by_key["001-invoice-overdue.eml"]["output"]
    assert invoice["classification"]["category"] == "billing"
    if invoice["classification"]["answered_by"]["priority"] == "llm":
        assert invoice["classification"]["priority"] == "high"
    assert invoice["extraction"]["invoice_numbers"] == ["INV-2026-0193"]
    assert invoice["reply"].startswith("Thank you, we have your message")
    assert by_key["034-phishing-verify-account.eml"]["output"]["extraction"] is None
    assert Path(result["artifacts"]["digest"]).is_file()
    assert {r["model"] for r in received} == {"qwen3"}
    # Only what the trained classifier is unsure of reaches the LLM; then the invoice has
    # 3 calls (summarise, extract, reply) and the spam 1 (summarise).
    escalated = sum(
        tier == "llm"
        for item in result["items"]
        if item["ok"]
        for tier in item["output"]["classification"]["answered_by"].values()
    )
    assert len(received) == 3 + 1 + escalated
    calls = len(received)

    assert main(["runs", "list"]) == 0
    listing = capsys.readouterr().out
    assert result["run_id"][:12] in listing and "partial" in listing

    assert main(["runs", "show", result["run_id"][:12]]) == 0
    shown = capsys.readouterr().out
    assert f"model calls ({calls})" in shown
    assert "summarise" in shown and "reply" in shown
    assert "099-malformed.eml failed" in shown
    tokens = f"{calls * 20} input + {calls * 5} output tokens"
    assert f"{calls} calls (0 cached) · {tokens} · cost $0.0000" in shown

    assert main(["runs", "show", result["run_id"], "--json"]) == 0
    calls = json.loads(capsys.readouterr().out)["model_calls"]
    assert all(c["input_tokens"] == 20 and c["latency_ms"] > 0 for c in calls)


def test_a_missing_key_names_the_variable_and_the_local_alternative(
    small_inbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "email-triage", str(small_inbox), "--model", "openai:gpt-4.1-mini"]) == 2
    message = capsys.readouterr().err
    assert "OPENAI_API_KEY" in message and "--model local" in message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "no-such-workflow", "."], "unknown workflow 'no-such-workflow'"),
        (["run", "missing/flow.yaml", "."], "missing/flow.yaml: no such workflow file"),
        (["run", "email-triage", "missing-folder"], "missing-folder: no such file or folder"),
        (["run", "email-triage", ".", "--model", "gpt-4.1"], "unknown model 'gpt-4.1'"),
        (["runs", "show", "abc"], "no run with id 'abc'"),
        (["resume", "abc"], "no run with id 'abc'"),
        (["estimate", "email-triage", ".", "--model", "gpt-4.1"], "--model gpt-4.1: a forecast"),
        (["run", "email-triage", ".", "--concurrency", "0"], "Invalid value for '--concurrency'"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert expected in capsys.readouterr().err


def test_a_folder_without_workflow_yaml_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flows").mkdir()
    assert main(["run", str(tmp_path / "flows"), "."]) == 2
    assert "flows: this folder has no workflow.yaml" in capsys.readouterr().err


def test_a_dotenv_line_without_equals_is_refused_at_its_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path(".env").write_text("# settings\nLLMFLOW_MODEL=m\nLLMFLOW_TIMEOUT 5\n")
    assert main(["runs", "list"]) == 2  # not a run with the default timeout
    message = capsys.readouterr().err
    assert ".env:3: cannot read the line starting 'LLMFLOW_TIMEOUT'" in message
    assert "NAME=value" in message


def test_a_compare_model_with_no_price_is_refused_before_the_run(
    small_inbox: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "email-triage", str(small_inbox), "--compare", "gpt-4.1"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2  # not a run with no compare line
    assert "--compare gpt-4.1: no known price for it" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "run" in text and "runs" in text


def test_a_second_run_is_free_from_the_cache_and_costs_are_reported(
    small_inbox: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "email-triage", str(small_inbox), "--model", "m", "--json"]
    with serve(answer) as (url, received):
        assert main([*args, "--base-url", url, "--out", str(tmp_path / "1")]) == 3
        first = json.loads(capsys.readouterr().out)["usage"]
        calls = len(received)
        assert main([*args, "--base-url", url, "--out", str(tmp_path / "2")]) == 3
        second = json.loads(capsys.readouterr().out)["usage"]
        assert len(received) == calls  # the second run made no model call
        assert main([*args, "--base-url", url, "--out", str(tmp_path / "3"), "--no-cache"]) == 3
        assert len(received) == 2 * calls
    capsys.readouterr()
    assert (first["calls"], first["cached"], first["cost_usd"]) == (calls, 0, "0")
    assert (second["calls"], second["cached"], second["cache_hit_rate"]) == (calls, calls, 1.0)
    assert (second["input_tokens"], second["output_tokens"]) == (0, 0)  # hits process nothing
    assert second["compare"]["model"] == "openai:gpt-4.1-mini"
    assert float(first["compare"]["cost_usd"]) > 0

    assert main(["cost", "--by", "step"]) == 0
    table = capsys.readouterr().out
    assert "email-triage/summary/summarise" in table and "total" in table
    assert main(["cost", "--by", "model", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["groups"]["m"]["calls"] == 3 * calls
    assert report["groups"]["m"]["cached"] == calls


def test_a_run_stops_at_its_request_budget_naming_the_flag(
    small_inbox: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(answer) as (url, received):
        code = main(
            ["run", "email-triage", str(small_inbox), "--base-url", url, "--model", "m",
             "--max-requests", "3", "--concurrency", "1", "--out", str(tmp_path / "o")]
        )  # fmt: skip
    assert code == 1
    assert len(received) == 3
    err = capsys.readouterr().err
    assert "stopped" in err and "--max-requests" in err


def test_estimate_forecasts_n_inputs_on_several_models(
    small_inbox: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serve(answer) as (url, received):
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        code = main(
            ["estimate", "email-triage", str(small_inbox), "--sample-model", "m", "--n", "300",
             "--model", "openai:gpt-4.1-mini", "--model", "openai:gpt-4.1", "--json"]
        )  # fmt: skip
        assert code == 0, capsys.readouterr().err
        forecast = json.loads(capsys.readouterr().out)
        # Each call is 20 + 5 tokens; `calls` over the 3 sample items (the malformed has 0).
        calls = len(received)
        assert forecast["sample_items"] == 3
        mini, big = forecast["models"]
        assert (mini["input_tokens"], mini["output_tokens"]) == (2000 * calls, 500 * calls)
        # $0.40 and $1.60 per M tokens
        assert Decimal(mini["cost_usd"]) == Decimal("0.0016") * calls
        low, high = Decimal(mini["cost_usd_low"]), Decimal(mini["cost_usd_high"])
        assert low <= Decimal(mini["cost_usd"]) <= high
        assert Decimal(big["cost_usd"]) > Decimal(mini["cost_usd"])
        assert "counted by m on 3 sample items" in mini["basis"]
        steps = {s["path"]: s for s in forecast["steps"]}
        assert steps["email-triage/reply/draft"]["calls_per_item"] == pytest.approx(1 / 3)

        # A recorded run on a target model is used for that model, and the table says so.
        assert main(["run", "email-triage", str(small_inbox), "--model", "openai:gpt-4.1-mini",
                     "--out", str(tmp_path / "o"), "--json"]) == 3  # fmt: skip
        capsys.readouterr()
        sample = forecast["sample_run"]
        assert main(["estimate", "email-triage", "--run", sample[:12], "--n", "10"]) == 0
        assert "forecast for 10 inputs" in capsys.readouterr().out
        assert main(["estimate", "email-triage", "--run", sample[:12], "--json"]) == 0
        bases = [m["basis"] for m in json.loads(capsys.readouterr().out)["models"]]
        assert bases[0] == "recorded on openai:gpt-4.1-mini (3 items)"
        assert bases[1].startswith("counted by m")
    assert len(received) == 2 * calls  # the estimate from --run made no model call


def test_estimate_needs_inputs_or_a_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "email-triage"]) == 2
    assert "--run" in capsys.readouterr().err
