"""Every template end to end through the workflow-file loader, on the scripted model.

Each test loads `src/llmflow/templates/<name>/workflow.yaml`, reads the template's sample
input with the workflow's own loader, runs the batch with the real engine (the scripted
model stands in for the model only) and checks what the run wrote.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llmflow import (
    BatchResult,
    ModelRequest,
    ModelResponse,
    RunStore,
    Settings,
    ToolCall,
    run_batch,
)
from llmflow.cli import main
from llmflow.steps.untrusted import unmark
from llmflow.testing import ScriptedModel, json_reply, scripted_gateway
from llmflow.workflow_files import TEMPLATES, load_workflow_file

from .fake_openai_server import serve
from .test_templates_tools import load_tools


def prompt(request: ModelRequest) -> str:
    return request.messages[-1].content or ""


def system(request: ModelRequest) -> str:
    return request.messages[0].content or ""


async def run_template(
    name: str, source: Path | str, model: ScriptedModel, out: Path, *, store: bool = False
) -> BatchResult:
    workflow = load_workflow_file(TEMPLATES / name)
    assert workflow.load is not None
    items = workflow.load(source if isinstance(source, Path) else Path(source))
    return await run_batch(
        workflow,
        items,
        gateway=scripted_gateway(model),
        out_dir=out,
        concurrency=1,
        store=RunStore(Settings().db_path) if store else None,
    )


def results(out: Path) -> dict[str, dict[str, Any]]:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["key"]: r for r in map(json.loads, lines)}


@pytest.mark.parametrize(
    "name",
    [
        "support-chat",
        "data-analysis",
        "email-triage",
        "email-digest",
        "tasks",
        "content",
        "decision",
    ],
)
def test_every_template_loads_and_describes_itself(name: str) -> None:
    workflow = load_workflow_file(TEMPLATES / name)
    assert workflow.description
    assert (TEMPLATES / name / "README.md").read_text().startswith(f"# {name}\n")


# -- email-triage --------------------------------------------------------------------------------


def triage_script(request: ModelRequest) -> str:
    text = prompt(request)
    spam = "LOTTERY" in text.upper()
    meeting = "Q4 review meeting" in text
    if "which category is the email?" in system(request):  # the cascades' LLM tiers
        return "spam" if spam else "internal" if meeting else "support"
    if "how urgent is the email?" in system(request):
        return "low" if spam else "high"
    if request.schema_name == "summary":
        return "Someone writes about an order."
    if request.schema_name == "extract":
        assert not spam, "spam is filed before extraction"
        return json_reply(
            {
                "request": "Help with the order.",
                "deadline": "Friday",
                "order_numbers": ["NW-1", "NW-99999"],  # invented ids, to be dropped
                "invoice_numbers": [],
                "needs_reply": not meeting,
            }
        )
    if request.schema_name == "reply":
        assert "They want: Help with the order." in text
        return "Dear customer, we are on it. Northwind Outfitters"
    raise AssertionError(f"unexpected step {request.schema_name}")


async def test_email_triage_files_each_mail_and_writes_the_digest(tmp_path: Path) -> None:
    inbox = TEMPLATES / "email-triage" / "sample_inbox"
    model = ScriptedModel(triage_script)
    batch = await run_template("email-triage", inbox, model, tmp_path)
    assert batch.status == "ok", batch.failed
    by_key = results(tmp_path)
    assert sorted(by_key) == sorted(p.name for p in inbox.glob("*.eml"))

    spam = by_key["035-lottery-winner.eml"]["output"]
    assert (spam["category"], spam["filed_as"], spam["reply"]) == (
        "spam",
        "spam/035-lottery-winner.eml",
        None,
    )
    assert spam["classified_by"]["category"] == "scams"  # the rule tier: no model call
    meeting = by_key["027-meeting-reschedule.eml"]["output"]
    assert meeting["needs_reply"] is False and meeting["reply"] is None
    assert meeting["filed_as"] == "internal/027-meeting-reschedule.eml"
    refund = by_key["002-refund-not-received.eml"]["output"]
    assert refund["order_numbers"][0] == "NW-10482"  # found in the mail by code
    assert "NW-1" not in refund["order_numbers"] and "NW-99999" not in refund["order_numbers"]
    assert refund["reply"].startswith("Dear customer")
    for key, record in by_key.items():  # each mail filed byte for byte, under its category
        output = record["output"]
        assert output["filed_as"] == f"{output['category']}/{key}"
        assert (tmp_path / output["filed_as"]).read_bytes() == (inbox / key).read_bytes()

    # The cascades: the trained ml tier answers what it is sure of, the LLM tier the rest
    # (five votes each: the scripted model gives no token log-probabilities).
    tiers = [t for r in by_key.values() for t in r["output"]["classified_by"].values()]
    assert set(tiers) <= {"scams", "category_ml", "category_llm", "priority_ml", "priority_llm"}
    assert "category_ml" in tiers and "priority_ml" in tiers
    llm_tier_calls = [r for r in model.requests if r.schema_name == "output"]
    assert len(llm_tier_calls) == 5 * sum(t.endswith("_llm") for t in tiers)
    for record in by_key.values():
        output = record["output"]
        if output["classified_by"]["priority"] == "priority_llm":
            assert output["priority"] == ("low" if output["category"] == "spam" else "high")

    steps = [r.schema_name for r in model.requests]
    assert steps.count("summary") == 5
    assert steps.count("extract") == 4  # not for spam
    assert steps.count("reply") == 3  # not for spam, not for the meeting note

    digest = (tmp_path / "digest.md").read_text()
    assert "5 emails triaged, 0 could not be read." in digest
    order = ["urgent", "high", "normal", "low"]
    ranked = sorted(by_key.values(), key=lambda r: order.index(r["output"]["priority"]))
    positions = [digest.index(r["output"]["subject"]) for r in ranked]
    assert positions == sorted(positions)  # most urgent first
    for priority in order:
        count = sum(r["output"]["priority"] == priority for r in by_key.values())
        assert (f"## {priority.capitalize()} ({count})" in digest) == (count > 0)


# -- email-digest --------------------------------------------------------------------------------


async def test_email_digest_summarises_every_mail_and_ranks_them(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for mail in sorted((TEMPLATES / "email-digest" / "sample_inbox").glob("*.eml")):
        (inbox / mail.name).write_bytes(mail.read_bytes())
    (inbox / "zz-broken.eml").write_bytes(b"\x00\x01 not an email")

    def script(request: ModelRequest) -> str:
        if request.schema_name == "summarise":
            text = prompt(request)
            priority = "urgent" if "overdue" in text else "low" if "verify" in text else "normal"
            return json_reply({"priority": priority, "summary": f"{priority} mail."})
        assert request.schema_name == "overview"
        return "One invoice is overdue; the rest can wait."

    model = ScriptedModel(script)
    batch = await run_template("email-digest", str(inbox), model, tmp_path / "out")
    assert batch.status == "ok", batch.failed
    [(key, record)] = results(tmp_path / "out").items()
    assert key == "value"  # the whole inbox is one item
    output = record["output"]
    assert output["overview"] == "One invoice is overdue; the rest can wait."
    priorities = [e["priority"] for e in output["emails"]]
    assert priorities == ["urgent", "normal", "normal", "normal", "low"]
    assert output["emails"][0]["title"].endswith("Invoice INV-2026-0193 is overdue")
    assert output["unreadable"][0].startswith("zz-broken.eml: ")
    assert [r.schema_name for r in model.requests].count("summarise") == 5
    overview_prompt = prompt(model.requests[-1])
    assert overview_prompt.index("[urgent]") < overview_prompt.index("[low]")

    digest = (tmp_path / "out" / "digest.md").read_text()
    assert digest.startswith("# Daily digest — 5 emails\n")
    assert digest.index("## Urgent (1)") < digest.index("## Normal (3)") < digest.index("## Low")
    assert "## Could not be read" in digest and "zz-broken.eml" in digest


# -- tasks ---------------------------------------------------------------------------------------


def tasks_script(request: ModelRequest) -> str:
    text = prompt(request)
    if "weekly operations" in text:
        items = [
            {"task": "Reorder 200 backpacks", "owner": "Jonas", "due": "by Wednesday"},
            {"task": "Send the carrier the late orders", "owner": "Elena", "due": "Friday"},
            {"task": "Evaluate a second carrier", "owner": "Marcus", "due": "next quarter"},
        ]
    elif "launch sync" in text:
        items = [{"task": "Book the studio", "owner": "Tom", "due": "by 2 December"}]
    else:
        items = [{"task": "Confirm rain jacket quantities", "owner": "Priya", "due": "1 December"}]
    return json_reply({"items": items})


async def test_tasks_resolves_due_dates_and_writes_one_list(tmp_path: Path) -> None:
    model = ScriptedModel(tasks_script)
    batch = await run_template("tasks", TEMPLATES / "tasks" / "sample", model, tmp_path)
    assert batch.status == "ok", batch.failed
    by_key = results(tmp_path)
    ops = by_key["2026-11-23-ops-weekly.md"]["output"]
    assert ops["written_on"] == "2026-11-23"
    assert [(t["owner"], t["due_date"]) for t in ops["tasks"]] == [
        ("Jonas", "2026-11-25"),
        ("Elena", "2026-11-27"),
        (None, None),  # Marcus is not in the note; "next quarter" names no date
    ]
    table = (tmp_path / "tasks.md").read_text().split("| --- | --- | --- | --- |\n")[1]
    rows = [line.split(" | ") for line in table.strip().splitlines()]
    assert [row[0].strip("| ") for row in rows] == [
        "2026-11-25",
        "2026-11-27",
        "2026-12-01",
        "2026-12-02",
        "next quarter",
    ]
    assert rows[-1][2] == "unassigned"
    assert "5 tasks from 3 notes." in (tmp_path / "tasks.md").read_text()
    as_json = json.loads((tmp_path / "tasks.json").read_text())  # the same list, for tools
    assert [(t["due_date"], t["owner"], t["source"]) for t in as_json] == [
        ("2026-11-25", "Jonas", "2026-11-23-ops-weekly.md"),
        ("2026-11-27", "Elena", "2026-11-23-ops-weekly.md"),
        ("2026-12-01", "Priya", "2026-11-25-email-supplier.md"),
        ("2026-12-02", "Tom", "2026-11-24-launch-sync.md"),
        (None, None, "2026-11-23-ops-weekly.md"),
    ]
    assert as_json[0] == {
        "task": "Reorder 200 backpacks",
        "owner": "Jonas",
        "due": "by Wednesday",
        "due_date": "2026-11-25",
        "source": "2026-11-23-ops-weekly.md",
    }


# -- content -------------------------------------------------------------------------------------


async def test_content_revises_until_the_code_check_and_the_editor_pass(tmp_path: Path) -> None:
    drafts = {
        1: "The revolutionary Ridgeline 2P tent sets up in 4 minutes.",  # a banned word
        2: "The Ridgeline 2P tent sets up in 4 minutes and weighs 1.9 kg.",
    }

    def script(request: ModelRequest) -> str:
        text = prompt(request)
        if request.schema_name == "critique":
            return json_reply({"passed": True, "score": 9, "feedback": "Reads well."})
        assert request.schema_name == "generate"
        return drafts[2] if "Revise it." in text else drafts[1]

    model = ScriptedModel(script)
    briefs = tmp_path / "briefs.jsonl"
    first = (TEMPLATES / "content" / "sample" / "briefs.jsonl").read_text().splitlines()[0]
    briefs.write_text(first + "\n")
    batch = await run_template("content", briefs, model, tmp_path / "out")
    assert batch.status == "ok", batch.failed
    output = results(tmp_path / "out")["tent"]["output"]
    assert output["text"] == drafts[2]
    assert (output["passed"], output["rounds"], output["style_issues"]) == (True, 2, [])
    second_draft = [prompt(r) for r in model.requests if r.schema_name == "generate"][1]
    assert "Your last draft:\nThe revolutionary" in second_draft
    assert "Change this: remove 'revolutionary'" in second_draft  # code overruled the editor
    assert "Style guide:\n# Northwind Outfitters style guide" in second_draft
    report = (tmp_path / "out" / "content.md").read_text()
    assert "## Ridgeline 2P tent (product description)" in report
    assert "after 2 round(s); passed the editor" in report


# -- decision ------------------------------------------------------------------------------------


async def test_decision_counts_only_votes_for_existing_options(tmp_path: Path) -> None:
    letters = {0: "B", 1: "D", 2: "B"}  # D names no option: there are three

    def script(request: ModelRequest) -> str:
        if request.schema_name == "explain":
            return "GreenPost is on time most often."
        seed = request.sampling.seed
        assert seed is not None and request.sampling.temperature == 0.7
        return json_reply({"choice": letters[seed], "reason": f"reason {seed}"})

    model = ScriptedModel(script)
    decisions = tmp_path / "decisions.jsonl"
    first = (TEMPLATES / "decision" / "sample" / "decisions.jsonl").read_text().splitlines()[0]
    decisions.write_text(first + "\n")
    batch = await run_template("decision", decisions, model, tmp_path / "out")
    assert batch.status == "ok", batch.failed
    output = results(tmp_path / "out")["carrier"]["output"]
    greenpost = "GreenPost: 4.60 EUR a parcel, 98% on time, carbon neutral"
    assert output["decision"] == greenpost
    assert output["tally"][greenpost] == 2 and sum(output["tally"].values()) == 2
    assert (output["agreement"], output["invalid_votes"]) == (1.0, 1)
    ballot = prompt(model.requests[0])
    assert "A: ParcelNow" in ballot and "C: QuickShip" in ballot and "D:" not in ballot
    explain = prompt(model.requests[-1])
    assert f"Chosen: {greenpost}" in explain and "reason 0 reason 2" in explain
    report = (tmp_path / "out" / "decisions.md").read_text()
    assert f"**{greenpost}** (100 % of the valid votes)" in report
    assert "1 vote(s) named no option" in report


# -- support-chat: a real SQLite database behind the agents' tools -------------------------------


def tool_call(request: ModelRequest, name: str, arguments: dict[str, str]) -> ModelResponse:
    call = ToolCall(id=f"call_{len(request.messages)}", name=name, arguments=json.dumps(arguments))
    return ModelResponse(tool_calls=[call], finish_reason="tool_calls")


def tool_results(request: ModelRequest) -> list[str]:
    """The tools' results, as the tools gave them (unmarked: lookups are marked untrusted)."""
    return [unmark(m.content or "") for m in request.messages if m.role == "tool"]


def support_script(request: ModelRequest) -> str | ModelResponse:
    done = tool_results(request)
    if system(request).startswith("You are the billing team"):
        assert "mei.tanaka@example.com" in system(request)  # the body is rendered per item
        if not done or not done[-1].startswith("INV-"):
            return tool_call(request, "look_up_invoice", {"order_id": "NW-1060"})
        return json_reply({"message": f"Here it is: {done[-1]}"})
    assert system(request).startswith("You are customer support")
    if "invoice" in prompt(request):
        return tool_call(request, "transfer_to_billing", {})
    steps: list[tuple[str, dict[str, str]]] = [
        ("look_up_customer", {"email_or_id": "anna.berg@example.com"}),
        ("look_up_order", {"order_id": "nw1042"}),
        ("request_refund", {"order_id": "NW-1042", "reason": "broken pole"}),
        ("request_refund", {"order_id": "#1042", "reason": "asking twice"}),  # must be refused
    ]
    if len(done) < len(steps):
        name, arguments = steps[len(done)]
        return tool_call(request, name, arguments)
    return json_reply({"message": f"Refunded. {done[2]}"})


async def test_support_chat_refunds_once_and_hands_billing_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORT_CHAT_APPROVE_ABOVE_EUR", "500")  # no approval below 500 EUR
    messages = tmp_path / "messages.jsonl"
    sample = (TEMPLATES / "support-chat" / "sample" / "messages.jsonl").read_text().splitlines()
    messages.write_text(
        "\n".join(line for line in sample if '"broken-tent"' in line or '"invoice-vat"' in line)
        + "\n"
    )
    model = ScriptedModel(support_script)
    batch = await run_template("support-chat", messages, model, tmp_path / "out", store=True)
    assert batch.status == "ok", batch.failed

    db = load_tools("support-chat").database_path()
    with sqlite3.connect(db) as conn:  # the real database: one refund row, not two
        assert conn.execute("SELECT order_id, amount_eur FROM refunds").fetchall() == [
            ("NW-1042", 249.0)
        ]
    refused = next(r for r in model.requests if len(tool_results(r)) == 4)
    assert tool_results(refused)[3].startswith("Error: the tool request_refund failed")
    assert "already refunded" in tool_results(refused)[3]

    by_key = results(tmp_path / "out")
    tent = by_key["broken-tent"]["output"]
    assert tent["reply"] == "Refunded. Refund of 249.00 EUR for NW-1042 recorded (broken pole)."
    assert [r["order_id"] for r in tent["refunds"]] == ["NW-1042"]
    invoice = by_key["invoice-vat"]["output"]
    assert invoice["reply"].startswith("Here it is: INV-2026-0377 for NW-1060")
    assert invoice["refunds"] == []

    store = RunStore(Settings().db_path)
    steps = {(row["path"], row["kind"], row["status"]) for row in store.rows("steps", batch.run_id)}
    store.close()
    assert (
        "support-chat/answer/request_refund[3]",
        "action",
        "ok",
    ) in steps  # declared side_effect
    assert ("support-chat/answer/request_refund[4]", "action", "failed") in steps
    assert ("support-chat/answer/look_up_order[2]", "tool", "ok") in steps
    assert ("support-chat/answer/billing/look_up_invoice[1]", "tool", "ok") in steps
    conversations = (tmp_path / "out" / "conversations.md").read_text()
    assert "Refunds on record for this customer: NW-1042 (249.00 EUR)" in conversations


# -- data-analysis: pandas tools over the CSV, a chart drawn by code -----------------------------


async def test_data_analysis_answers_with_computed_numbers_and_draws_the_chart(
    tmp_path: Path,
) -> None:
    def script(request: ModelRequest) -> str | ModelResponse:
        assert "- region (text, 4 values)" in system(request)  # the data's profile
        done = tool_results(request)
        if not done:
            args = {"column": "revenue_eur", "agg": "sum", "group_by": "Region"}
            return tool_call(request, "group_and_aggregate", args)
        top = done[0].splitlines()[1]
        chart = {"column": "revenue_eur", "agg": "sum", "group_by": "region", "kind": "bar"}
        answer = {"answer": f"The top region: {top} EUR.", "chart": chart}
        return json_reply({"response": answer})  # the SDK wraps a JSON Schema output

    model = ScriptedModel(script)
    questions = tmp_path / "questions.jsonl"
    first = (TEMPLATES / "data-analysis" / "sample" / "questions.jsonl").read_text()
    questions.write_text(first.splitlines()[0] + "\n")
    batch = await run_template("data-analysis", questions, model, tmp_path / "out")
    assert batch.status == "ok", batch.failed

    revenue: dict[str, float] = {}
    with (TEMPLATES / "data-analysis" / "sample" / "sales.csv").open() as f:
        for row in csv.DictReader(f):
            revenue[row["region"]] = revenue.get(row["region"], 0.0) + float(row["revenue_eur"])
    region, total = max(revenue.items(), key=lambda kv: kv[1])
    output = results(tmp_path / "out")["revenue-by-region"]["output"]
    assert output["answer"] == f"The top region: {region}: {total:,.2f} EUR."
    assert output["chart"] == "charts/revenue-by-region.png" and output["chart_error"] is None
    assert (tmp_path / "out" / output["chart"]).read_bytes().startswith(b"\x89PNG")
    answers = (tmp_path / "out" / "answers.md").read_text()
    assert "![revenue-by-region](charts/revenue-by-region.png)" in answers


# -- through the CLI: a template by name, on an OpenAI-compatible server ------------------------


def test_run_a_template_by_name_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def answer(body: dict[str, Any]) -> str:
        note = body["messages"][-1]["content"]
        owner = "Tom" if "launch sync" in note else "Jonas"
        return json.dumps({"items": [{"task": "Do it", "owner": owner, "due": "Friday"}]})

    with serve(answer) as (url, received):
        code = main(
            ["run", "tasks", str(TEMPLATES / "tasks" / "sample"), "--base-url", url,
             "--model", "m", "--out", str(tmp_path / "out"), "--json"]
        )  # fmt: skip
    assert code == 0
    assert len(received) == 3  # one call per note
    assert received[0]["response_format"]["type"] == "json_schema"
    items = {i["key"]: i["output"] for i in json.loads(capsys.readouterr().out)["items"]}
    assert items["2026-11-24-launch-sync.md"]["tasks"] == [
        {"task": "Do it", "owner": "Tom", "due": "Friday", "due_date": "2026-11-27"}
    ]
    table = (tmp_path / "out" / "tasks.md").read_text()
    assert "| 2026-11-27 | Do it | Tom | 2026-11-24-launch-sync.md |" in table
