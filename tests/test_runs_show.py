"""`llmflow runs show` stays usable on big runs: a page of items with the run's totals, the
JSON streamed one row a line, and the reads on indexes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmflow.cli import main
from llmflow.settings import Settings
from llmflow.store.base import CallRecord
from llmflow.store.sqlite import RunStore

ITEMS = 120


def fill(store: RunStore, run_id: str = "big", items: int = ITEMS) -> None:
    """A run of `items` items, 2 steps and 2 calls each; every 10th item failed."""
    store.start_run(run_id, workflow="wf", model="m", source="in/", out_dir=None,
                    items_total=items)  # fmt: skip
    for i in range(items):
        item_id, at = f"{run_id}.{i}", 1000.0 + i
        store.start_item(item_id, run_id=run_id, key=f"k{i:04d}")
        for n in range(2):
            store.add_step(run_id=run_id, item_id=item_id, path=f"wf/s{n}", kind="llm",
                           input={"i": i}, output={"n": n}, error=None,
                           started_at=at + n * 0.1, latency_s=0.01)  # fmt: skip
            store.add_call(CallRecord(
                id=f"{item_id}.c{n}", model="m", provider="p", prompt='{"messages": []}',
                response="ok", finish_reason="stop", input_tokens=10, output_tokens=2,
                latency_ms=5.0, attempts=1, status="ok", error=None, started_at=at + n * 0.1,
                cost="0.001", cached=False,
            ), run_id=run_id, item_id=item_id, step_path=f"wf/s{n}")  # fmt: skip
        failed = i % 10 == 0
        store.end_item(item_id, status="failed" if failed else "ok", output={"i": i},
                       error=ValueError(f"bad {i}") if failed else None)  # fmt: skip
    store.end_run(run_id, status="partial", items_ok=items - items // 10,
                  items_failed=items // 10, error=None)  # fmt: skip
    store.flush()


@pytest.fixture
def run() -> str:
    store = RunStore(Settings().db_path)
    fill(store)
    store.close()
    return "big"


def _shown(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The output; as one line of words, but for --json (lines wrap at the width)."""
    assert main(["runs", "show", *args]) == 0
    text = capsys.readouterr().out
    return text if "--json" in args else " ".join(text.split())


def test_the_first_page_of_items_with_the_runs_totals(
    run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _shown(capsys, run)
    assert "model calls (240)" in shown  # the run's, not the page's
    assert "k0049" in shown and "k0050" not in shown.replace("k0050 failed", "")
    assert "items 1-50 of 120 shown (12 failed, 108 ok) · next: --offset 50" in shown
    assert "240 calls (0 cached) · 2400 input + 480 output tokens · cost $0.2400" in shown
    assert "item k0110 failed: ValueError: bad 110" in shown  # every failed item, listed


def test_a_page_further_on_and_a_status(run: str, capsys: pytest.CaptureFixture[str]) -> None:
    shown = _shown(capsys, run, "--limit", "10", "--offset", "100")
    table = shown.split("model calls (240)")[1]
    assert {f"k{i:04d}" for i in range(100, 110)} <= set(table.split())
    assert "k0099" not in table and "k0110" not in table
    assert "items 101-110 of 120 shown" in shown and "next: --offset 110" in shown
    failed = _shown(capsys, run, "--status", "failed", "--limit", "5")
    assert "items 1-5 of 12 failed shown" in failed and "next: --offset 5" in failed
    assert "k0040" in failed.split("model calls")[1] and "k0041" not in failed
    last = _shown(capsys, run, "--offset", "100")
    assert "items 101-120 of 120 shown" in last and "next:" not in last


def test_json_is_one_document_streamed_one_row_a_line(
    run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _shown(capsys, run, "--json")
    shown = json.loads(text)
    assert [i["key"] for i in shown["items"]] == [f"k{i:04d}" for i in range(ITEMS)]
    assert len(shown["steps"]) == len(shown["model_calls"]) == 2 * ITEMS
    assert shown["items_total"] == ITEMS and shown["items_by_status"] == {"ok": 108, "failed": 12}
    assert shown["usage"]["calls"] == 240 and shown["usage"]["cost_usd"] == "0.240"
    assert all(c["cost_usd"] == "0.001" for c in shown["model_calls"])
    lines = text.splitlines()
    assert len(lines) > 4 * ITEMS  # a row a line: written as read, not one giant line
    assert json.loads(lines[1].rstrip(",")) == shown["items"][0]


def test_json_pages_take_their_items_steps_and_calls(
    run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = json.loads(_shown(capsys, run, "--json", "--limit", "5", "--offset", "10"))
    assert [i["key"] for i in shown["items"]] == [f"k{i:04d}" for i in range(10, 15)]
    ids = {i["id"] for i in shown["items"]}
    assert len(shown["model_calls"]) == 10 and {c["item_id"] for c in shown["model_calls"]} == ids
    assert len(shown["steps"]) == 10 and {s["item_id"] for s in shown["steps"]} == ids
    assert shown["items_total"] == ITEMS
    empty = json.loads(_shown(capsys, run, "--json", "--offset", "500"))
    assert empty["items"] == [] and empty["model_calls"] == []


def test_a_runs_rows_stream_in_order_off_the_indexes(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "s.db")
    fill(store, items=30)
    for table, index in [("items", "items_run_started"), ("steps", "steps_run_started"),
                         ("model_calls", "model_calls_run_started")]:  # fmt: skip
        plan = " | ".join(
            r[3] for r in store.db.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE run_id = ? "
                "ORDER BY started_at, rowid", ("big",),
            )
        )  # fmt: skip
        assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan
        streamed = list(store.stream(table, "big"))
        assert [dict(r) for r in streamed] == [dict(r) for r in store.rows(table, "big")]
        assert [r["started_at"] for r in streamed] == sorted(r["started_at"] for r in streamed)
    store.close()
