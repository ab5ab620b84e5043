"""Big items: one over the size limit fails with a clear error and the batch goes on; a big
body is stored once per item, not once per step and call, and reads back whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmflow import Item, RunStore, Workflow, assign, chain, code, llm, run_batch
from llmflow.testing import ScriptedModel, scripted_gateway


def _workflow() -> Workflow:
    steps = [
        assign(f"note{i}", llm(f"s{i}", instructions=f"Step {i}.", prompt="{{ body }}"))
        for i in range(3)
    ]
    return Workflow(name="big", step=chain("big", code(lambda text: {"body": text}), *steps))


async def test_a_big_body_is_stored_once_and_reads_back_whole(tmp_path: Path) -> None:
    body = "lorem ipsum dolor sit amet " * 200_000  # 5.4 MB
    store = RunStore(tmp_path / "runs.sqlite")
    batch = await run_batch(
        _workflow(), [Item("big", body)], gateway=scripted_gateway(ScriptedModel(["ok"] * 3)),
        store=store,
    )  # fmt: skip
    assert batch.status == "ok", batch.results[0].error
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = sum(len(r[0]) for r in store.db.execute("SELECT text FROM blobs"))
    assert stored == len(body)  # once, for 4 steps' inputs and 3 calls' prompts
    size = (tmp_path / "runs.sqlite").stat().st_size
    assert size < 2 * len(body), size
    steps = store.rows("steps", batch.run_id)
    inputs = [s["input"] for s in steps if s["path"].endswith("/s2")]
    assert body in json.loads(inputs[0])["body"]
    prompts = [c["prompt"] for c in store.rows("model_calls", batch.run_id)]
    assert all(body.strip() in p for p in prompts[:1]) or all(body[:1000] in p for p in prompts)
    store.close()


async def test_an_item_over_the_limit_fails_clearly_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMFLOW_MAX_ITEM_MB", "1")
    batch = await run_batch(
        _workflow(), [Item("small", "hello"), Item("huge", "x" * 2_000_000)],
        gateway=scripted_gateway(ScriptedModel(["ok"] * 3)),
    )  # fmt: skip
    assert batch.status == "partial"
    (failed,) = batch.failed
    assert failed.key == "huge"
    assert "over 1 MB" in str(failed.error) and "LLMFLOW_MAX_ITEM_MB" in str(failed.error)
