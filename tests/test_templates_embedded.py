"""Every template end to end on the real embedded model (SmolLM2-135M, in-process), on one or
two sample items each.

These assert structure only (types, shapes, files written, the database consistent), never
judgement: a 135M model classifies, votes and writes poorly, but every output it gives is
valid and typed. One to two minutes on two cores.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from llmflow import BatchResult, Gateway, RunStore, Settings, Workflow, run_batch
from llmflow.workflow_files import TEMPLATES, load_workflow_file, load_workflow_text

from .test_templates_tools import load_tools

pytestmark = pytest.mark.embedded


async def run_on_embedded(
    workflow: Workflow, source: Path, out: Path, *, store: bool = False
) -> BatchResult:
    assert workflow.load is not None
    return await run_batch(
        workflow,
        workflow.load(source),
        gateway=Gateway(Settings()),
        out_dir=out,
        concurrency=1,
        store=RunStore(Settings().db_path) if store else None,
    )


def first_lines(name: str, sample: str, n: int, to: Path) -> Path:
    lines = (TEMPLATES / name / "sample" / sample).read_text().splitlines()[:n]
    to.write_text("\n".join(lines) + "\n")
    return to


def outputs(out: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(r["ok"] for r in records), records
    return [r["output"] for r in records]


async def test_support_chat(tmp_path: Path) -> None:
    messages = first_lines("support-chat", "messages.jsonl", 1, tmp_path / "m.jsonl")
    workflow = load_workflow_file(TEMPLATES / "support-chat")
    batch = await run_on_embedded(workflow, messages, tmp_path / "out", store=True)
    [output] = outputs(tmp_path / "out")
    assert isinstance(output["reply"], str) and output["reply"].strip()
    assert all(r["order_id"].startswith("NW-") for r in output["refunds"])
    with sqlite3.connect(load_tools("support-chat").database_path()) as db:
        refunded = [row[0] for row in db.execute("SELECT order_id FROM refunds")]
    assert len(refunded) == len(set(refunded)) <= 1  # never twice, whatever the model asked
    store = RunStore(Settings().db_path)
    kinds = {row["path"]: row["kind"] for row in store.rows("steps", batch.run_id)}
    store.close()
    for path, kind in kinds.items():
        if "/request_refund[" in path:
            assert kind == "action"
        elif re.search(r"/look_up_\w+\[\d+\]$", path):
            assert kind == "tool"
    assert (tmp_path / "out" / "conversations.md").is_file()


async def test_data_analysis(tmp_path: Path) -> None:
    questions = first_lines("data-analysis", "questions.jsonl", 1, tmp_path / "q.jsonl")
    workflow = load_workflow_file(TEMPLATES / "data-analysis")
    await run_on_embedded(workflow, questions, tmp_path / "out")
    [output] = outputs(tmp_path / "out")
    assert isinstance(output["answer"], str) and output["answer"].strip()
    assert (output["chart"] is None) != (output["chart_error"] is None)  # a chart, or why not
    if output["chart"]:
        assert (tmp_path / "out" / output["chart"]).read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "out" / "answers.md").is_file()


async def test_email_triage(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(TEMPLATES / "email-triage" / "sample_inbox" / "010-tent-pole-broken.eml", inbox)
    workflow = load_workflow_file(TEMPLATES / "email-triage")
    await run_on_embedded(workflow, inbox, tmp_path / "out")
    [output] = outputs(tmp_path / "out")
    assert output["category"] in {"billing", "support", "sales", "internal", "spam"}
    assert output["priority"] in {"urgent", "high", "normal", "low"}
    assert output["classified_by"]["category"] in {"scams", "category_ml", "category_llm"}
    assert output["classified_by"]["priority"] in {"priority_ml", "priority_llm"}
    assert isinstance(output["summary"], str) and output["summary"].strip()
    assert output["filed_as"] == f"{output['category']}/010-tent-pole-broken.eml"
    assert (tmp_path / "out" / output["filed_as"]).is_file()
    if output["category"] != "spam":
        assert "NW-10390" in output["order_numbers"]  # found by code, whatever the model said
    assert "1 emails triaged" in (tmp_path / "out" / "digest.md").read_text()


async def test_email_digest(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for mail in sorted((TEMPLATES / "email-digest" / "sample_inbox").glob("*.eml"))[:2]:
        shutil.copy(mail, inbox)
    workflow = load_workflow_file(TEMPLATES / "email-digest")
    await run_on_embedded(workflow, inbox, tmp_path / "out")
    [output] = outputs(tmp_path / "out")
    assert len(output["emails"]) == 2
    order = ["urgent", "high", "normal", "low"]
    priorities = [e["priority"] for e in output["emails"]]
    assert set(priorities) <= set(order)
    assert priorities == sorted(priorities, key=order.index)
    assert isinstance(output["overview"], str) and output["overview"].strip()
    assert (tmp_path / "out" / "digest.md").read_text().startswith("# Daily digest — 2 emails")


async def test_tasks(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    note = TEMPLATES / "tasks" / "sample" / "2026-11-24-launch-sync.md"
    shutil.copy(note, notes)
    workflow = load_workflow_file(TEMPLATES / "tasks")
    await run_on_embedded(workflow, notes, tmp_path / "out")
    [output] = outputs(tmp_path / "out")
    assert output["written_on"] == "2026-11-24"
    text = note.read_text()
    for task in output["tasks"]:
        assert isinstance(task["task"], str) and task["task"].strip()
        assert task["owner"] is None or task["owner"].split()[0] in text  # grounded
        if task["due_date"] is not None:
            date.fromisoformat(task["due_date"])
    assert "| due | task | owner | from |" in (tmp_path / "out" / "tasks.md").read_text()
    as_json = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert sorted(t["task"] for t in as_json) == sorted(t["task"] for t in output["tasks"])


async def test_content(tmp_path: Path) -> None:
    briefs = first_lines("content", "briefs.jsonl", 1, tmp_path / "b.jsonl")
    file = TEMPLATES / "content" / "workflow.yaml"
    text = file.read_text()
    assert "max_rounds: 3" in text
    # One round keeps this test short; the loop itself is tested on the scripted model.
    workflow = load_workflow_text(text.replace("max_rounds: 3", "max_rounds: 1"), file)
    await run_on_embedded(workflow, briefs, tmp_path / "out")
    [output] = outputs(tmp_path / "out")
    assert isinstance(output["text"], str) and output["text"].strip()
    assert output["rounds"] == 1 and 0 <= output["score"] <= 10
    assert isinstance(output["style_issues"], list)
    if output["style_issues"]:
        assert output["passed"] is False  # code overrules the critique


async def test_decision(tmp_path: Path) -> None:
    decisions = first_lines("decision", "decisions.jsonl", 1, tmp_path / "d.jsonl")
    workflow = load_workflow_file(TEMPLATES / "decision")
    await run_on_embedded(workflow, decisions, tmp_path / "out")
    [output] = outputs(tmp_path / "out")
    options = json.loads(decisions.read_text())["options"]
    assert output["decision"] in options
    assert sorted(output["tally"]) == sorted(options)
    assert sum(output["tally"].values()) + output["invalid_votes"] == 3
    assert 0 < output["agreement"] <= 1
    assert isinstance(output["explanation"], str) and output["explanation"].strip()
